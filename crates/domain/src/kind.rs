//! The two object kinds, their object types, and the properties each kind knows.

use std::fmt;

/// What kind of object: a host, or a script (an allowlisted command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Host,
    Script,
}

impl Kind {
    /// The singular name used in URLs, the database and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Host => "host",
            Kind::Script => "script",
        }
    }

    /// Parses the name stored in the database.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "host" => Some(Kind::Host),
            "script" => Some(Kind::Script),
            _ => None,
        }
    }

    /// The properties this kind knows, besides `object_name` and `object_type`.
    pub fn properties(self) -> &'static [(&'static str, PropType)] {
        match self {
            Kind::Host => HOST_PROPERTIES,
            Kind::Script => SCRIPT_PROPERTIES,
        }
    }

    /// The type of one known property, `None` for an unknown key.
    pub fn property(self, key: &str) -> Option<PropType> {
        self.properties()
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, ty)| *ty)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `object` (a real host or script) or `template` (something to import).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    Object,
    Template,
}

impl ObjectType {
    /// The name used in representations and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Object => "object",
            ObjectType::Template => "template",
        }
    }

    /// Parses `object` or `template`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "object" => Some(ObjectType::Object),
            "template" => Some(ObjectType::Template),
            _ => None,
        }
    }
}

/// How a property's values are checked and normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropType {
    /// A string; `""` is unset.
    Text,
    /// `true`/`false`/`"y"`/`"n"`.
    Bool,
    /// `disabled`: a boolean whose `false` is the same as unset.
    Disabled,
    /// An integer (number or numeric string) within bounds.
    Int { min: i64, max: i64 },
    /// Seconds, also written `"5m"`, `"1h"`, `"30s"` or `"2d"` as Director accepts.
    Interval,
    /// Any number (number or numeric string).
    Number,
    /// A list of names; empty strings are ignored.
    Names,
    /// A list of argument strings, kept as given (empty strings included).
    Arguments,
    /// Custom variables: an object whose values are kept as they are.
    Vars,
    /// Any JSON, kept as sent (an empty list or object is unset): Director's
    /// data `fields`, which Steward stores and returns but never reads.
    Json,
    /// An absolute path without whitespace, control characters or `..`.
    Command,
    /// One of a few words.
    Choice(&'static [&'static str]),
}

const fn int(min: i64, max: i64) -> PropType {
    PropType::Int { min, max }
}

/// Default agent port when `agent_port` is unset anywhere in the chain.
pub const DEFAULT_AGENT_PORT: i64 = 7446;

/// How a host's agent gets its allowlist (`delivery`): pushed to it by the
/// server (the default), or pulled by the agent with a long poll.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    #[default]
    Push,
    Pull,
}

super::words::words!(Delivery, "delivery", {
    Push => "push",
    Pull => "pull",
});

impl Delivery {
    /// A host's resolved `delivery`: `push` when unset (or, from a stored
    /// value the rules would refuse now, anything else).
    pub fn of(value: Option<&serde_json::Value>) -> Self {
        value
            .and_then(serde_json::Value::as_str)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    }
}

const HOST_PROPERTIES: &[(&str, PropType)] = &[
    ("accept_config", PropType::Bool),
    ("action_url", PropType::Text),
    ("address", PropType::Text),
    ("address6", PropType::Text),
    ("agent_port", int(1, 65535)),
    ("check_command", PropType::Text),
    ("check_interval", PropType::Interval),
    ("check_period", PropType::Text),
    ("check_timeout", PropType::Interval),
    ("command_endpoint", PropType::Text),
    ("custom_endpoint_name", PropType::Text),
    ("delivery", PropType::Choice(Delivery::WORDS)),
    ("disabled", PropType::Disabled),
    ("display_name", PropType::Text),
    ("enable_active_checks", PropType::Bool),
    ("enable_event_handler", PropType::Bool),
    ("enable_flapping", PropType::Bool),
    ("enable_notifications", PropType::Bool),
    ("enable_passive_checks", PropType::Bool),
    ("enable_perfdata", PropType::Bool),
    ("event_command", PropType::Text),
    ("fields", PropType::Json),
    ("flapping_threshold_high", PropType::Number),
    ("flapping_threshold_low", PropType::Number),
    ("groups", PropType::Names),
    ("has_agent", PropType::Bool),
    ("icon_image", PropType::Text),
    ("icon_image_alt", PropType::Text),
    ("imports", PropType::Names),
    ("master_should_connect", PropType::Bool),
    ("max_check_attempts", int(1, 1_000_000)),
    ("notes", PropType::Text),
    ("notes_url", PropType::Text),
    ("retry_interval", PropType::Interval),
    ("scripts", PropType::Names),
    ("template_choice", PropType::Text),
    ("uuid", PropType::Text),
    ("vars", PropType::Vars),
    ("volatile", PropType::Bool),
    ("zone", PropType::Text),
];

const SCRIPT_PROPERTIES: &[(&str, PropType)] = &[
    ("arguments", PropType::Arguments),
    ("command", PropType::Command),
    ("description", PropType::Text),
    ("disabled", PropType::Disabled),
    ("imports", PropType::Names),
    ("timeout", int(1, 86_400)),
    ("vars", PropType::Vars),
];

/// Properties that a template never passes on to what imports it:
/// Director's `uuid` names the one object it was given to, and its
/// `template_choice` and `fields` describe the template itself.
pub const NOT_INHERITED: &[&str] = &["imports", "disabled", "uuid", "template_choice", "fields"];
