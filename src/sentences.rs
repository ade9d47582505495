//! Every error sentence the service answers with, written once. Handlers and error mappings
//! use these names, so `grep` finds each sentence in exactly one place.

// ---- shared -------------------------------------------------------------------------------

/// The seed's sentence for every authentication or authorization refusal on the token routes.
pub const AUTH_ERROR: &str = "Authentication error. Probably the authorization token is not correct or the user does not have the right role to access this service.";
pub const ROUTE_NOT_FOUND: &str = "Route not found";
pub const PAYLOAD_TOO_LARGE: &str = "Request body is larger than the 64 KiB limit";
pub const INTERNAL_ERROR: &str = "Internal server error";
pub const STORAGE_UNAVAILABLE: &str = "Storage unavailable";
pub const TOO_MANY_REQUESTS: &str = "Too many requests";
/// More than `MAX_CONCURRENT_REQUESTS` requests at once.
pub const OVERLOADED: &str = "Service overloaded";

// ---- idempotent writes ---------------------------------------------------------------------

pub const IDEMPOTENCY_KEY_REUSED: &str = "Idempotency-Key reused with a different request";
pub const IDEMPOTENCY_KEY_IN_PROGRESS: &str = "A request with this Idempotency-Key is in progress";
pub const IDEMPOTENCY_KEY_NOT_VALID: &str =
    "Idempotency-Key must be 1 to 255 printable ASCII characters";

// ---- programs -----------------------------------------------------------------------------

pub const PROGRAM_ID_NOT_FOUND: &str = "ID not found";
pub const PROGRAM_HAS_USERS: &str = "Program has users";
pub const PROGRAM_NAME_REQUIRED: &str = "Field `name` is required and must not be empty";
pub const PROGRAM_BAD_HOLD_DAYS: &str = "Field `hold_days` must be a whole number from 0 to 365";
pub const PROGRAM_BAD_CLAWBACK_DAYS: &str =
    "Field `clawback_days` must be a whole number from 0 to 365";
pub const PROGRAM_BAD_REVIEW: &str = "Field `review` must be one of none, all, flagged";
pub const PROGRAM_BAD_REVIEW_VELOCITY: &str =
    "Field `review_velocity` must be a whole number of at least 1, or null";
pub const PROGRAM_BAD_CREDIT_CAP: &str =
    "Field `max_credits_per_indicator` must be a whole number of at least 1, or null";

// ---- indication ---------------------------------------------------------------------------

pub const USER_NOT_FOUND: &str = "User not found";
pub const CREDIT_NOT_FOUND: &str = "Credit not found";
pub const API_KEY_NOT_FOUND: &str = "API key not found";
pub const API_KEY_BAD_NAME: &str = "Field `name` is required and must have 1 to 100 characters";
pub const API_KEY_BAD_ROLE: &str = "Field `role` must be service or admin";
pub const DECISION_REASON_REQUIRED: &str = "Field `reason` is required: one of fraud, \
     self_referral, duplicate, refund, terms_violation, other";
pub const DECISION_BAD_REASON: &str = "Field `reason` must be one of fraud, self_referral, \
     duplicate, refund, terms_violation, other";
pub const DECISION_NOTE_TOO_LONG: &str = "Field `note` must be at most 500 characters";
pub const BULK_APPROVE_HASHES: &str = "Field `user_hashes` must list 1 to 100 user hashes";
pub const REGISTER_HASHES_NEEDED: &str = "Needed user_indicator and user_indicated hashes";
pub const INDICATOR_HASH_NOT_FOUND: &str = "User indicator hash not found";
pub const PROGRAM_NOT_FOUND: &str = "Referral program id not found";
pub const NO_PROGRAM: &str = "No referral program configured";
pub const ALREADY_REGISTERED: &str = "User already registered";
pub const SELF_INDICATION: &str = "A user cannot indicate itself";
pub const INDICATOR_PARAMETER_NEEDED: &str = "Need user_indicator parameter";
pub const INDICATOR_NOT_FOUND: &str = "User indicator not found";
pub const TOTAL_REQUIRED: &str = "Field `total_amount_paid` is required";
pub const EMAILS_REQUIRED: &str = "Field `emails` is required";
pub const USER_HASHES_REQUIRED: &str = "Field `user_hash` or `user_hashes` is required";
pub const USER_HASH_LENGTH: &str = "Every user hash must have 1 to 128 characters";

// ---- referrers and referees ---------------------------------------------------------------

pub const EMAIL_NOT_VALID: &str = "Unprocessable entity. Email is not valid.";
pub const EMAIL_NOT_FOUND: &str = "Email not found.";
/// A referrer look-up (`GET /api/referrer?referrerCode=`) given something that cannot be a code.
/// Not to be confused with [`REDEEM_CODE_NOT_VALID`], the redemption routes' sentence.
pub const LOOKUP_CODE_NOT_VALID: &str = "Unprocessable entity. Referral code is not valid.";
pub const REFERRER_NOT_FOUND: &str = "Referrer not found.";
pub const BAD_REGISTER_BODY: &str =
    "The body of request is wrong. Check name of field and which fields are required.";
pub const ATTRIBUTES_REQUIRED: &str = "Attributes are required";
pub const BODY_NOT_VALID: &str = "The request body is not valid";
/// A redemption given a code that cannot be a code, or (on `apply`) an unknown code.
/// Not to be confused with [`LOOKUP_CODE_NOT_VALID`].
pub const REDEEM_CODE_NOT_VALID: &str = "Referral code is not valid";
pub const CODE_NOT_FOUND: &str = "Referral code is not found";
pub const OWN_CODE: &str = "A user cannot redeem its own code";
pub const DIFFERENT_CODE_BEFORE: &str = "The user registered a different code before";
pub const REFEREE_NOT_FOUND: &str = "Referee by user id not found.";
pub const CODE_EXPIRED: &str = "Referral code has expired";
pub const CODE_LIMIT_REACHED: &str = "Referral code has reached its redemption limit";
pub const RULES_NOT_AN_OBJECT: &str =
    "The body must be a JSON object with any of expiresAt, maxRedemptions and active";
pub const RULES_UNKNOWN_FIELD: &str =
    "Unknown field: a code's rules are expiresAt, maxRedemptions and active";
pub const RULES_BAD_EXPIRES_AT: &str =
    "Field `expiresAt` must be an RFC 3339 date-time with an offset, or null";
pub const RULES_BAD_MAX_REDEMPTIONS: &str =
    "Field `maxRedemptions` must be a whole number of at least 1, or null";
pub const RULES_BAD_ACTIVE: &str = "Field `active` must be true, false or null";

// ---- callbacks ----------------------------------------------------------------------------

pub const CALLBACK_NOT_FOUND: &str = "Callback not found";
pub const CALLBACK_ALREADY_DELIVERED: &str = "Callback already delivered";

// ---- webhooks -----------------------------------------------------------------------------

pub const WEBHOOK_NOT_FOUND: &str = "Webhook not found";
pub const WEBHOOK_BAD_URL: &str = "Field `url` must be an http:// or https:// URL";
pub const WEBHOOK_PRIVATE_URL: &str = "Field `url` points at a loopback, link-local, private or unspecified address; set WEBHOOK_ALLOW_PRIVATE=true to allow such endpoints";
pub const WEBHOOK_NO_EVENT_TYPES: &str =
    "Field `event_types` must list event types, or be [\"*\"] for every type";
pub const WEBHOOK_BAD_DESCRIPTION: &str = "Field `description` must have at most 500 characters";
pub const WEBHOOK_BAD_SINCE: &str =
    "Field `since` is required and must be an RFC 3339 date-time with an offset";
