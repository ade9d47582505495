//! Money: an exact, non-negative decimal; and [`SignedMoney`], the amount of a ledger entry or an
//! event, negative where money is taken back.
//!
//! Accepted as a JSON number or a decimal string (form bodies only have strings), returned as a
//! JSON number with every digit kept (serde_json's `arbitrary_precision`), never a binary float.

use std::{fmt, str::FromStr};

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{ObjectBuilder, RefOr, Schema, Type, schema::SchemaType},
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(Decimal);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("must not be negative")]
    Negative,
    #[error("is not a decimal number")]
    NotDecimal,
    #[error("must be at most 1000000000000000000")]
    TooLarge,
}

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);
    /// The largest amount accepted, 10^18: sums of up to ten billion such amounts (a program's
    /// figures, a statement) stay exact decimals.
    pub const MAX: Decimal = Decimal::from_parts(2_808_348_672, 232_830_643, 0, false, 0);

    pub fn new(value: Decimal) -> Result<Self, MoneyError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative);
        }
        if value > Self::MAX {
            return Err(MoneyError::TooLarge);
        }
        Ok(Self(value))
    }

    pub fn amount(self) -> Decimal {
        self.0
    }

    /// Sums amounts; `None` on overflow (beyond 28 significant digits).
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// `count` times the amount; `None` on overflow.
    pub fn checked_times(self, count: u64) -> Option<Money> {
        self.0.checked_mul(Decimal::from(count)).map(Money)
    }

    /// The difference; `None` when it would be negative.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0
            .checked_sub(other.0)
            .and_then(|value| Money::new(value).ok())
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let value = Decimal::from_str(s)
            .or_else(|_| Decimal::from_scientific(s))
            .map_err(|_| MoneyError::NotDecimal)?;
        Self::new(value)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        rust_decimal::serde::arbitrary_precision::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `Decimal`'s own visitor takes JSON numbers (exactly, through arbitrary_precision),
        // integers and decimal strings, and rejects objects, arrays, booleans and null.
        let value = <Decimal as Deserialize>::deserialize(deserializer)?;
        Money::new(value).map_err(serde::de::Error::custom)
    }
}

impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Number))
            .minimum(Some(0))
            .maximum(Some(1e18))
            .description(Some(
                "Exact decimal amount, non-negative. Accepted as a JSON number or a decimal \
                 string; returned as a JSON number with every digit kept.",
            ))
            .examples([serde_json::json!(10.5)])
            .into()
    }
}

impl ToSchema for Money {}

/// An exact decimal that may be negative: what a ledger entry or an event moves, negative when a
/// credit is taken back (`credit_reversed`). Never parsed from request input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignedMoney(Decimal);

impl Money {
    /// The same amount taken back: `-amount`.
    pub fn negated(self) -> SignedMoney {
        SignedMoney(-self.0)
    }
}

impl From<Money> for SignedMoney {
    fn from(money: Money) -> Self {
        Self(money.0)
    }
}

impl SignedMoney {
    pub fn amount(self) -> Decimal {
        self.0
    }

    /// The amount without its sign.
    pub fn magnitude(self) -> Money {
        Money(self.0.abs())
    }

    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }
}

impl FromStr for SignedMoney {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Decimal::from_str(s)
            .or_else(|_| Decimal::from_scientific(s))
            .map(Self)
            .map_err(|_| MoneyError::NotDecimal)
    }
}

impl fmt::Display for SignedMoney {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for SignedMoney {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        rust_decimal::serde::arbitrary_precision::serialize(&self.0, serializer)
    }
}

impl PartialSchema for SignedMoney {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Number))
            .description(Some(
                "Exact decimal amount, negative where money is taken back (`credit_reversed`); \
                 a JSON number with every digit kept.",
            ))
            .examples([serde_json::json!(-100.0)])
            .into()
    }
}

impl ToSchema for SignedMoney {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize)]
    struct Holder {
        value: Money,
    }

    fn parse(json: &str) -> Result<Money, serde_json::Error> {
        serde_json::from_str::<Holder>(json).map(|h| h.value)
    }

    #[test]
    fn numbers_and_strings_are_exact() {
        assert_eq!(parse(r#"{"value": 0.1}"#).unwrap().to_string(), "0.1");
        assert_eq!(parse(r#"{"value": "10.50"}"#).unwrap().to_string(), "10.50");
        assert_eq!(parse(r#"{"value": 7}"#).unwrap().to_string(), "7");
        let sum = parse(r#"{"value": 0.1}"#)
            .unwrap()
            .checked_add(parse(r#"{"value": 0.2}"#).unwrap())
            .unwrap();
        assert_eq!(
            serde_json::to_string(&Holder { value: sum }).unwrap(),
            r#"{"value":0.3}"#
        );
    }

    #[test]
    fn wrong_types_and_negatives_are_rejected() {
        for bad in [
            r#"{"value": -1}"#,
            r#"{"value": "-0.5"}"#,
            r#"{"value": "abc"}"#,
            r#"{"value": {"$gt": 0}}"#,
            r#"{"value": [1]}"#,
            r#"{"value": true}"#,
            r#"{"value": 1e400}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn amounts_stop_at_ten_to_the_eighteenth() {
        assert_eq!(Money::MAX.to_string(), "1000000000000000000");
        assert!(parse(r#"{"value": 1000000000000000000}"#).is_ok());
        assert!(parse(r#"{"value": "1000000000000000000.01"}"#).is_err());
        assert!(parse(r#"{"value": 79228162514264337593543950335}"#).is_err());
    }

    #[test]
    fn a_taken_back_amount_is_negative_and_exact() {
        let money: Money = "100.50".parse().unwrap();
        let back = money.negated();
        assert!(back.is_negative());
        assert_eq!(back.to_string(), "-100.50");
        assert_eq!(back.magnitude(), money);
        assert_eq!("-100.50".parse::<SignedMoney>().unwrap(), back);
        assert_eq!(SignedMoney::from(money).to_string(), "100.50");
    }
}
