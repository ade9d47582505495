//! The root of the API description; every route adds itself through `utoipa_axum::routes!`.

use crate::sentences::{OVERLOADED, PAYLOAD_TOO_LARGE, STORAGE_UNAVAILABLE};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "referral-api",
        description = "Referral programs, indications and credits (the indication program), and \
            referral codes.\n\n\
            Authentication: `Authorization: Bearer <JWT>` (the bare token is accepted too). \
            The indication program's routes need role `service` or `admin` unless the deployment set \
            `LEGACY_ROUTES_AUTH=none`.\n\n\
            The indication program's paths answer with and without the trailing slash, and accept JSON or \
            `application/x-www-form-urlencoded` bodies with the same field names. Money is an \
            exact decimal, given as a JSON number or a decimal string, returned as a JSON number. \
            Errors are `{\"error\": \"<sentence>\"}`: broken JSON 400, a content type other than \
            JSON or form 415, a body over 64 KiB 413, a field of the wrong type or value 422.\n\n\
            Every `POST`, `PUT`, `PATCH` and `DELETE` accepts `Idempotency-Key` (1 to 255 \
            printable ASCII characters), scoped to the token's `sub`: for 24 hours a repeat with \
            the same method, path and body gets the first answer again, byte for byte, with \
            `Idempotency-Replayed: true`; the key with another request is 422, and while the \
            first runs 409. Answers 5xx, 401, 408 and 429 are not kept.\n\n\
            End users are rate-limited on the code look-up and redemption routes: 429 \
            `Too many requests` with `Retry-After`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "service", description = "Version, routes and health"),
        (name = "programs", description = "Referral programs"),
        (name = "indication", description = "Users, registrations, invoices, statements, e-mail indications"),
        (name = "referrers", description = "Referrers and their referral codes"),
        (name = "referees", description = "Redeeming referral codes"),
        (name = "callbacks", description = "Credit events sent to the billing service (signed form POSTs, retried; `webhook-id` is the key to deduplicate on), for admins"),
        (name = "api-keys", description = "Keys for back-end callers (`Authorization: Bearer rk_…`), for admins: shown once, stored as a hash, revoked on every instance within 10 seconds"),
        (name = "exports", description = "The ledger and the credits as CSV for finance, streamed, for admins"),
        (name = "events", description = "The feed of every credit move and redemption, in the order they were written"),
        (name = "credits", description = "Credits taken back and reviewed, for admins: the review queue with each flag's reason, one credit's history, and decisions (approve, reject, reverse) recorded with who took them and why"),
    )
)]
pub struct ApiDoc;

/// Whether a security requirement asks for nothing (`security(())`: no token needed).
fn is_empty_requirement(requirement: &utoipa::openapi::security::SecurityRequirement) -> bool {
    serde_json::to_value(requirement)
        .is_ok_and(|value| value.as_object().is_some_and(|o| o.is_empty()))
}

/// The tags of the indication program's operations, whose bodies are JSON or form.
const FORM_TAGS: [&str; 2] = ["indication", "programs"];

/// Documents a JSON request body as a form body too: the indication program's routes take
/// both, with the same field names (`extract::JsonOrForm`).
fn also_as_form(operation: &mut utoipa::openapi::path::Operation) {
    if let Some(utoipa::openapi::RefOr::T(body)) = operation.request_body.as_mut()
        && let Some(json) = body.content.get("application/json").cloned()
    {
        body.content
            .entry("application/x-www-form-urlencoded".to_owned())
            .or_insert(json);
    }
}

/// Adds to every operation of the assembled description (`app::api_routes` calls it once the
/// routes are merged) the answers any operation may give whatever its own, unless it documents
/// them itself: 401 where a token is required (every operation but those that clear
/// `security`), 400, 413 and 415 where there is a body, and 503 when the store does not answer;
/// and the form twin of the indication program's JSON bodies.
/// Written once here rather than on every route.
pub fn add_common_responses(openapi: &mut utoipa::openapi::OpenApi) {
    {
        use utoipa::openapi::{ResponseBuilder, content::ContentBuilder, path::HttpMethod};
        let error = || {
            ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for method in [
                HttpMethod::Get,
                HttpMethod::Post,
                HttpMethod::Put,
                HttpMethod::Patch,
                HttpMethod::Delete,
            ] {
                let operation = match method {
                    HttpMethod::Get => item.get.as_mut(),
                    HttpMethod::Post => item.post.as_mut(),
                    HttpMethod::Put => item.put.as_mut(),
                    HttpMethod::Patch => item.patch.as_mut(),
                    HttpMethod::Delete => item.delete.as_mut(),
                    _ => None,
                };
                let Some(operation) = operation else { continue };
                if operation
                    .tags
                    .as_ref()
                    .is_some_and(|tags| tags.iter().any(|tag| FORM_TAGS.contains(&tag.as_str())))
                {
                    also_as_form(operation);
                }
                let open = operation
                    .security
                    .as_ref()
                    .is_some_and(|requirements| requirements.iter().all(is_empty_requirement));
                let with_body = operation.request_body.is_some();
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: String| {
                    responses.entry(status.to_owned()).or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(description)
                            .content("application/json", error())
                            .into()
                    });
                };
                if !open {
                    add(
                        "401",
                        "No valid token, or one without the role (or the ownership) this route \
                         needs"
                            .to_owned(),
                    );
                }
                if with_body {
                    add("400", "Broken JSON".to_owned());
                    add("415", "A content type this route does not take".to_owned());
                }
                if with_body {
                    responses.entry("413".to_owned()).or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(format!("`{PAYLOAD_TOO_LARGE}`"))
                            .content("application/json", error())
                            .into()
                    });
                }
                responses.entry("503".to_owned()).or_insert_with(|| {
                    ResponseBuilder::new()
                        .description(format!(
                            "`{STORAGE_UNAVAILABLE}` or `{OVERLOADED}`, with `Retry-After`"
                        ))
                        .content("application/json", error())
                        .into()
                });
            }
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "HS256 with JWT_SECRET, or RS256/ES256 with JWT_PUBLIC_KEY. Claims: sub \
                         and exp required; email, given_name, family_name, roles.",
                    ))
                    .build(),
            ),
        );
    }
}
