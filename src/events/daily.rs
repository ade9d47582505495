//! A program's activity per UTC day — registrations, credits acquired and reversed, and their
//! totals — counted from its `credit.signup`, `credit.acquired` and `credit.reversed` events.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::domain::{Event, EventType};
use crate::money::{Money, SignedMoney};

/// The event types a day counts.
pub const COUNTED: [EventType; 3] = [
    EventType::CreditSignup,
    EventType::CreditAcquired,
    EventType::CreditReversed,
];

/// One day's figures of one program.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFigures {
    pub registrations: u64,
    pub acquired: u64,
    pub reversed: u64,
    pub acquired_total: Money,
    /// Positive: what the reversals took back.
    pub reversed_total: Money,
}

impl DayFigures {
    /// Adds an event of a counted type with its amount; other types change nothing.
    pub fn count(&mut self, event_type: EventType, amount: SignedMoney) {
        let add = |total: Money| total.checked_add(amount.magnitude()).unwrap_or(total);
        match event_type {
            EventType::CreditSignup => self.registrations += 1,
            EventType::CreditAcquired => {
                self.acquired += 1;
                self.acquired_total = add(self.acquired_total);
            }
            EventType::CreditReversed => {
                self.reversed += 1;
                self.reversed_total = add(self.reversed_total);
            }
            _ => {}
        }
    }

    /// The sum of two days' figures (for a store that counts a day in parts).
    pub fn merge(&mut self, other: &DayFigures) {
        self.registrations += other.registrations;
        self.acquired += other.acquired;
        self.reversed += other.reversed;
        self.acquired_total = self
            .acquired_total
            .checked_add(other.acquired_total)
            .unwrap_or(self.acquired_total);
        self.reversed_total = self
            .reversed_total
            .checked_add(other.reversed_total)
            .unwrap_or(self.reversed_total);
    }
}

/// What a counted event adds, and to which program and day: `None` for an event of another
/// type or without a program.
pub fn tally(event: &Event) -> Option<(String, NaiveDate, EventType, SignedMoney)> {
    if !COUNTED.contains(&event.event_type) {
        return None;
    }
    let program = event.data.get("program_id")?.as_str()?.to_owned();
    let amount = event
        .data
        .get("amount")
        .map(|amount| match amount {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .and_then(|text| text.parse().ok())
        .unwrap_or(SignedMoney::from(Money::ZERO));
    Some((
        program,
        event.timestamp.date_naive(),
        event.event_type,
        amount,
    ))
}

/// The first day of a window of `days` days ending with the day of `now`.
pub fn first_day(now: DateTime<Utc>, days: u32) -> NaiveDate {
    let today = now.date_naive();
    today
        .checked_sub_days(chrono::Days::new(u64::from(days.saturating_sub(1))))
        .unwrap_or(today)
}

/// Every day of the window, oldest first, with the figures of the days that had any.
pub fn series(
    now: DateTime<Utc>,
    days: u32,
    known: &[(NaiveDate, DayFigures)],
) -> Vec<(NaiveDate, DayFigures)> {
    let first = first_day(now, days);
    first
        .iter_days()
        .take(usize::try_from(days).unwrap_or(0))
        .map(|date| {
            let mut figures = DayFigures::default();
            for (_, part) in known.iter().filter(|(day, _)| *day == date) {
                figures.merge(part);
            }
            (date, figures)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("a time")
    }

    #[test]
    fn counted_events_add_to_their_program_and_day() {
        let event = Event::new(
            EventType::CreditReversed,
            json!({ "program_id": "p1", "amount": -50 }),
            at("2026-12-01T23:59:59Z"),
        );
        let (program, day, event_type, amount) = tally(&event).expect("counted");
        assert_eq!(program, "p1");
        assert_eq!(day.to_string(), "2026-12-01");
        let mut figures = DayFigures::default();
        figures.count(event_type, amount);
        assert_eq!(figures.reversed, 1);
        assert_eq!(figures.reversed_total.to_string(), "50");
        let held = Event::new(
            EventType::CreditHeld,
            json!({ "program_id": "p1" }),
            at("2026-12-01T00:00:00Z"),
        );
        assert!(tally(&held).is_none());
    }

    #[test]
    fn every_day_of_the_window_is_present() {
        let mut busy = DayFigures::default();
        busy.count(EventType::CreditSignup, SignedMoney::from(Money::ZERO));
        let days = series(
            at("2026-12-02T10:00:00Z"),
            3,
            &[("2026-12-01".parse().expect("a day"), busy.clone())],
        );
        let dates: Vec<String> = days.iter().map(|(d, _)| d.to_string()).collect();
        assert_eq!(dates, ["2026-11-30", "2026-12-01", "2026-12-02"]);
        assert_eq!(days[1].1, busy);
        assert_eq!(days[0].1, DayFigures::default());
    }
}
