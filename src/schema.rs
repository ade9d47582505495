//! Request schemas of the API description that derive attributes cannot state: each says
//! exactly what the parsers accept, so a client built from `/openapi.json` sends what passes.

use utoipa::openapi::{
    RefOr, Schema,
    schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type},
};

/// A user hash: 1 to 128 characters, not all blank (it is trimmed).
pub fn user_hash() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(128))
        .pattern(Some(r"\S"))
}

/// Several user hashes: an array of 1 to `max`, or (what a form can send) one comma-separated
/// string of them, whose blank items are skipped.
pub fn user_hash_list(max: usize) -> RefOr<Schema> {
    let more = max.saturating_sub(1);
    OneOfBuilder::new()
        .item(
            ArrayBuilder::new()
                .items(user_hash())
                .min_items(Some(1))
                .max_items(Some(max)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("Comma-separated hashes; blank items are skipped"))
                .pattern(Some(format!(
                    r"^(\s*,)*\s*[^,\s][^,]{{0,127}}(,[^,]{{0,128}}){{0,{more}}}$"
                ))),
        )
        .into()
}

/// E-mail addresses: an array of at most `max` strings, or one comma-separated string (forms).
/// Addresses that are not valid are reported, not refused.
pub fn email_list(max: usize) -> RefOr<Schema> {
    let more = max.saturating_sub(1);
    OneOfBuilder::new()
        .item(
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(Type::String))
                .max_items(Some(max)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("Comma-separated addresses"))
                .pattern(Some(format!(r"^[^,]*(,[^,]*){{0,{more}}}$"))),
        )
        .into()
}

/// The event types an endpoint receives: 1 or more names of event types, or `*` for every type.
pub fn event_type_names() -> RefOr<Schema> {
    let names: Vec<&str> = std::iter::once("*")
        .chain(crate::events::EventType::ALL.iter().map(|t| t.as_str()))
        .collect();
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names)),
        )
        .min_items(Some(1))
        .into()
}
