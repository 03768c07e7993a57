//! Every message a client reads, in Django REST Framework's (or Django's) words, in one place.
//!
//! Legacy clients show these to people and some compare them, so each is written exactly once:
//! the services put them in [`crate::error::FieldErrors`], GraphQL carries them in
//! `extensions.messages`, and the legacy layer turns those into DRF's bodies unchanged.

// Fields (DRF's `Field.default_error_messages`).

/// A required field that is absent.
pub const REQUIRED: &str = "This field is required.";
/// `null` where a value is required (DRF's relational fields also turn `""` into it).
pub const NULL: &str = "This field may not be null.";
/// An empty (or blank after trimming) text.
pub const BLANK: &str = "This field may not be blank.";
/// DRF's `ProhibitNullCharactersValidator`, which every `CharField` runs.
pub const NULL_CHARACTERS: &str = "Null characters are not allowed.";
/// A `CharField` given something that is not text (a list, an object, a boolean).
pub const NOT_A_STRING: &str = "Not a valid string.";
/// An `IntegerField` given something that is not one.
pub const INVALID_INTEGER: &str = "A valid integer is required.";
/// An `IntegerField` given more than 1,000 characters.
pub const INTEGER_TOO_LONG: &str = "String value too large.";
/// A cursor that is not one of this list's.
pub const INVALID_CURSOR: &str = "Invalid cursor.";
/// An id that is not one.
pub const INVALID_ID: &str = "Invalid ID.";

pub fn too_long(max: usize) -> String {
    format!("Ensure this field has no more than {max} characters.")
}

pub fn at_least(min: i64) -> String {
    format!("Ensure this value is greater than or equal to {min}.")
}

pub fn at_most(max: u64) -> String {
    format!("Ensure this value is less than or equal to {max}.")
}

/// A body that is not an object (`non_field_errors`).
pub fn not_a_dictionary(type_name: &str) -> String {
    format!("Invalid data. Expected a dictionary, but got {type_name}.")
}

/// A body that is absent (`non_field_errors`).
pub const NO_DATA: &str = "No data provided";

// Accounts (Django's `User` model and validators).

pub const USERNAME_INVALID: &str =
    "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";
pub const EMAIL_INVALID: &str = "Enter a valid email address.";
pub const USERNAME_TAKEN: &str = "A user with that username already exists.";
pub const EMAIL_TAKEN: &str = "A user with that email already exists.";

/// `UserAttributeSimilarityValidator`; `label` is "username" or "email address".
pub fn password_too_similar(label: &str) -> String {
    format!("The password is too similar to the {label}.")
}

pub fn password_too_short(min: usize) -> String {
    format!("This password is too short. It must contain at least {min} characters.")
}

pub const PASSWORD_NUMERIC: &str = "This password is entirely numeric.";

// Profiles (Django's `ImageField` and `FileField`).

/// Bytes that are not an image Django can open.
pub const IMAGE_INVALID: &str =
    "Upload a valid image. The file you uploaded was either not an image or a corrupted image.";
pub const FILE_EMPTY: &str = "The submitted file is empty.";

pub fn file_too_large(max_bytes: usize) -> String {
    format!("Ensure this file is no larger than {max_bytes} bytes.")
}

// Friends, blocks, chat and reactions.

pub const SELF_FRIEND: &str = "You cannot add yourself to your friends.";
pub const SELF_UNFRIEND: &str = "You cannot remove yourself from your friends.";
pub const SELF_BLOCK: &str = "You cannot block yourself.";
pub const SELF_UNBLOCK: &str = "You cannot unblock yourself.";
pub const SELF_CHAT: &str = "You cannot start a chat with yourself.";
pub const NOT_AN_EMOJI: &str = "Enter a single emoji.";
pub const FIRST_AND_LAST: &str = "Passing both `first` and `last` is not supported.";

/// DRF's `SlugRelatedField` message for a username nobody has.
pub fn unknown_username(value: &str) -> String {
    format!("Object with username={value} does not exist.")
}

// Requests as a whole (DRF's exceptions).

pub const NOT_FOUND: &str = "Not found.";
pub const PERMISSION_DENIED: &str = "You do not have permission to perform this action.";
pub const INTERNAL: &str = "Internal server error.";
pub const INVALID_INPUT: &str = "Invalid input.";

/// DRF's `Throttled`: singular "second" for one, as DRF words it.
pub fn throttled(seconds: u64) -> String {
    let unit = if seconds == 1 { "second" } else { "seconds" };
    format!("Request was throttled. Expected available in {seconds} {unit}.")
}
