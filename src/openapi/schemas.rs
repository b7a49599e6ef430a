//! The schemas of the OpenAPI document: what the server reads and answers.
//!
//! Host and script bodies are built from the property tables of
//! `domain::kind`, so the document names exactly the properties the server
//! knows. A request schema describes the *forms* a value may take (the
//! server normalises `"y"` to `true`, `"5665"` to `5665`, `""` to unset);
//! a value of the right form can still be refused with `422` for its
//! meaning (a port out of range, an unknown template). The other bodies
//! are written as plain structs only to be described here: the server
//! builds its answers with `serde_json`.

pub use crate::api::{AgentConfig, ApiKey, ErrorBody, SigningKey, Status};
use std::borrow::Cow;

use serde_json::{Value, json};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, ArrayItems, ObjectBuilder, Schema,
    SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::Kind;
use crate::domain::kind::PropType;

/// Host names: 1 to 255 letters, digits, `.`, `-`, `_` (`domain::ObjectName`).
const HOST_NAME: &str = "^[A-Za-z0-9._-]{1,255}$";
/// Script names: 1 to 64 letters, digits, `-`, `_`.
const SCRIPT_NAME: &str = "^[A-Za-z0-9_-]{1,64}$";
/// What Rust's `i64::from_str` reads, or `""` (unset).
const INTEGER_TEXT: &str = "^([+-]?[0-9]+)?$";
/// An integer or Director's interval notation (`"5m"`), or `""` (unset).
const INTERVAL_TEXT: &str = "^([+-]?[0-9]+|\\s*[0-9]+[smhd]?(\\s+[0-9]+[smhd]?)*\\s*)?$";

fn typed(ty: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(ty)
}

fn null() -> Schema {
    typed(Type::Null).into()
}

/// `{"type": [ty, "null"]}`.
fn nullable(ty: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([ty, Type::Null]))
}

/// Exactly these JSON values.
fn one_of_values(values: impl IntoIterator<Item = Value>) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .enum_values(Some(values))
        .into()
}

fn any_of(items: impl IntoIterator<Item = Schema>) -> Schema {
    items
        .into_iter()
        .fold(AnyOfBuilder::new(), |any, item| any.item(item))
        .into()
}

fn strings() -> ArrayBuilder {
    ArrayBuilder::new().items(typed(Type::String))
}

/// A boolean as the server reads it: `true`, `false`, `"y"`, `"n"`, or
/// `""`/`null` for unset.
fn accepted_bool() -> Schema {
    one_of_values([
        json!(true),
        json!(false),
        json!("y"),
        json!("n"),
        json!(""),
        Value::Null,
    ])
}

/// A list of strings, or a single string (a list of one), or unset.
fn accepted_names() -> Schema {
    any_of([strings().into(), typed(Type::String).into(), null()])
}

/// The forms a property's value may take in a request body.
fn accepted(ty: PropType) -> Schema {
    match ty {
        PropType::Text => nullable(Type::String).into(),
        PropType::Command => nullable(Type::String)
            .pattern(Some("^(/.*)?$"))
            .description(Some(
                "An absolute path without whitespace, control characters or `..` segments",
            ))
            .into(),
        PropType::Bool | PropType::Disabled => accepted_bool(),
        PropType::Choice(words) => any_of([
            typed(Type::String)
                .enum_values(Some(words.iter().copied().chain([""])))
                .into(),
            null(),
        ]),
        PropType::Int { min, max } => any_of([
            typed(Type::Integer)
                .minimum(Some(min))
                .maximum(Some(max))
                .into(),
            typed(Type::String).pattern(Some(INTEGER_TEXT)).into(),
            null(),
        ]),
        PropType::Interval => any_of([
            typed(Type::Integer).minimum(Some(0)).into(),
            typed(Type::String).pattern(Some(INTERVAL_TEXT)).into(),
            null(),
        ]),
        PropType::Number => any_of([
            typed(Type::Number).into(),
            typed(Type::String).into(),
            null(),
        ]),
        PropType::Names | PropType::Arguments => accepted_names(),
        PropType::Vars => any_of([
            typed(Type::Object).into(),
            ArrayBuilder::new().max_items(Some(0)).into(),
            null(),
        ]),
        PropType::Json => ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .into(),
    }
}

/// The normalised form of a property in answers. Unset properties are
/// absent, or with `withNull` `null`, `[]` or `{}`.
fn shown(ty: PropType) -> Schema {
    match ty {
        PropType::Text | PropType::Command => nullable(Type::String).into(),
        PropType::Choice(words) => any_of([
            typed(Type::String)
                .enum_values(Some(words.iter().copied()))
                .into(),
            null(),
        ]),
        PropType::Bool | PropType::Disabled => nullable(Type::Boolean).into(),
        PropType::Int { .. } | PropType::Interval => nullable(Type::Integer).into(),
        PropType::Number => nullable(Type::Number).into(),
        PropType::Names => strings().into(),
        // An unset `arguments` (any) shows as `null`, apart from `[]` (none).
        PropType::Arguments => any_of([strings().into(), null()]),
        PropType::Vars => typed(Type::Object).into(),
        PropType::Json => ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .into(),
    }
}

fn name_pattern(kind: Kind) -> &'static str {
    match kind {
        Kind::Host => HOST_NAME,
        Kind::Script => SCRIPT_NAME,
    }
}

/// A host or script body for POST, PUT and merge patches.
fn object_body(kind: Kind) -> Schema {
    let example = match kind {
        Kind::Host => json!({
            "object_name": "web-01",
            "address": "127.0.2.10",
            "display_name": "Web 01",
            "groups": ["web"],
            "vars": {"os": "Linux"},
            "vars.location": "Berlin",
        }),
        Kind::Script => json!({
            "object_name": "check_disk",
            "command": "/usr/lib/nagios/plugins/check_disk",
            "arguments": ["-w", "10%"],
            "timeout": 30,
        }),
    };
    let mut object = ObjectBuilder::new()
        .examples([example])
        .description(Some(format!(
            "A {kind} as written. Known properties only: an unknown key with a value other than \
             `null` gets `422 Trying to set invalid key`. `\"vars.NAME\": value` sets one variable \
             (`null` removes it). Values are normalised: booleans also take `\"y\"`/`\"n\"`, \
             integers numeric strings, `\"\"` and `null` unset a property."
        )))
        .property(
            "object_name",
            nullable(Type::String).pattern(Some(format!(
                "^({})?$",
                name_pattern(kind)
                    .trim_start_matches('^')
                    .trim_end_matches('$')
            ))),
        )
        .property(
            "object_type",
            one_of_values([json!("object"), json!("template"), json!(""), Value::Null]),
        );
    for (name, ty) in kind.properties() {
        object = object.property(*name, accepted(*ty));
    }
    object
        // Unknown keys are ignored only when null (Ansible sends every option).
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(null()))))
        // utoipa has no field for `patternProperties`; extensions are written
        // into the schema object as they are.
        .extensions(Some(Extensions::from_iter([(
            "patternProperties",
            json!({"^vars\\.": {}}),
        )])))
        .into()
}

/// A host or script as answered (the default, `withNull`, `properties` and
/// `resolved` views all fit).
fn object_shown(kind: Kind) -> Schema {
    let mut object = ObjectBuilder::new()
        .description(Some(format!(
            "A {kind}: `object_name`, `object_type` and every property that is set. \
             `properties=` can leave any key out, `withNull` adds unset ones."
        )))
        .property(
            "object_name",
            typed(Type::String).pattern(Some(name_pattern(kind))),
        )
        .property(
            "object_type",
            typed(Type::String).enum_values(Some(["object", "template"])),
        );
    for (name, ty) in kind.properties() {
        object = object.property(*name, shown(*ty));
    }
    object.into()
}

/// Declares a documentation-only type whose schema a function builds.
macro_rules! built_schema {
    ($(#[$doc:meta])* $name:ident => $build:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                RefOr::T($build)
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

built_schema!(
    /// A host in a request body.
    HostBody => object_body(Kind::Host)
);
built_schema!(
    /// A script in a request body.
    ScriptBody => object_body(Kind::Script)
);
built_schema!(
    /// A host as answered.
    Host => object_shown(Kind::Host)
);
built_schema!(
    /// A script as answered.
    Script => object_shown(Kind::Script)
);
/// One JSON Patch operation: `op`, a JSON Pointer `path`, and `value` or
/// `from` where the operation needs one.
fn patch_operation(ops: &[&str], extra: Option<&str>) -> Schema {
    let mut operation = typed(Type::Object)
        .property("op", typed(Type::String).enum_values(Some(ops.to_vec())))
        .property("path", typed(Type::String).pattern(Some(POINTER)))
        .required("op")
        .required("path");
    match extra {
        Some("value") => {
            operation = operation
                .property(
                    "value",
                    ObjectBuilder::new().schema_type(SchemaType::AnyValue),
                )
                .required("value");
        }
        Some(field) => {
            operation = operation
                .property(field, typed(Type::String).pattern(Some(POINTER)))
                .required(field);
        }
        None => {}
    }
    operation.into()
}

/// A JSON Pointer (RFC 6901): empty, or `/` and the reference tokens.
const POINTER: &str = "^(/.*)?$";

built_schema!(
    /// An RFC 6902 JSON Patch document.
    JsonPatch => ArrayBuilder::new()
        .items(ArrayItems::RefOrSchema(Box::new(RefOr::T(any_of([
            patch_operation(&["add", "replace", "test"], Some("value")),
            patch_operation(&["remove"], None),
            patch_operation(&["move", "copy"], Some("from")),
        ])))))
        .into()
);

/// Seconds to wait, from 0 to `max`; an empty value is the same as none.
fn seconds_up_to(max: u64) -> Schema {
    any_of([
        typed(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(max))
            .into(),
        typed(Type::String).enum_values(Some([""])).into(),
    ])
}

built_schema!(
    /// `wait` of a deploy: 0 to 600 seconds.
    DeployWait => seconds_up_to(600)
);
built_schema!(
    /// `stage_wait` of a staged deploy: 0 to 3600 seconds.
    StageWait => seconds_up_to(3600)
);
built_schema!(
    /// `wait` of an allowlist pull: 0 to 300 seconds.
    PullWait => seconds_up_to(300)
);
built_schema!(
    /// `wait` of a blocking query (the activity log, a deployment): 0 to 300 seconds.
    BlockingWait => seconds_up_to(300)
);

/// A page of hosts, or the whole list.
#[derive(Debug, ToSchema)]
pub struct HostList {
    pub objects: Vec<Host>,
    /// The cursor of the next page: only with `limit`, absent on the last page.
    pub next: Option<String>,
    /// With `count`: how many objects match the filters in all.
    pub total: Option<u64>,
}

/// A page of scripts, or the whole list.
#[derive(Debug, ToSchema)]
pub struct ScriptList {
    pub objects: Vec<Script>,
    /// The cursor of the next page: only with `limit`, absent on the last page.
    pub next: Option<String>,
    /// With `count`: how many objects match the filters in all.
    pub total: Option<u64>,
}

built_schema!(
    /// An API user as written. Unknown keys with a value other than `null` get `422`.
    UserBody => typed(Type::Object)
        .examples([json!({"object_name": "ops", "role": "operator", "password": "a long secret"})])
        .property(
            "object_name",
            nullable(Type::String).pattern(Some("^[A-Za-z0-9._@-]{0,64}$")),
        )
        .property(
            "role",
            one_of_values([json!("admin"), json!("operator"), json!("reader"), json!(""), Value::Null]),
        )
        .property("permissions", accepted_names())
        .property("restrictions", accepted_names())
        .property("disabled", accepted_bool())
        .property(
            "password",
            nullable(Type::String).description(Some("Write-only; at least 8 characters")),
        )
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(null()))))
        .into()
);

built_schema!(
    /// Limits of a host template's key. Host keys take neither (`422`).
    ApiKeyBody => typed(Type::Object)
        .examples([json!({"expires_in": 86400, "max_uses": 500})])
        .property(
            "expires_in",
            any_of([
                typed(Type::Integer).minimum(Some(1)).into(),
                typed(Type::String).pattern(Some(INTEGER_TEXT)).into(),
                null(),
            ]),
        )
        .property(
            "max_uses",
            any_of([
                typed(Type::Integer).minimum(Some(1)).into(),
                typed(Type::String).pattern(Some(INTEGER_TEXT)).into(),
                null(),
            ]),
        )
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(null()))))
        .into()
);

built_schema!(
    /// What a registering node sends. Other keys and empty values are
    /// ignored; `name` (or `object_name`) and `key` may come here instead of
    /// the query.
    RegisterBody => typed(Type::Object)
        .examples([json!({"display_name": "Web 01", "address": "127.0.0.10", "delivery": "pull"})])
        .property("display_name", ObjectBuilder::new().schema_type(SchemaType::AnyValue))
        .property("address", ObjectBuilder::new().schema_type(SchemaType::AnyValue))
        .property("address6", ObjectBuilder::new().schema_type(SchemaType::AnyValue))
        .property("agent_port", ObjectBuilder::new().schema_type(SchemaType::AnyValue))
        .property("delivery", ObjectBuilder::new().schema_type(SchemaType::AnyValue))
        .property("name", ObjectBuilder::new().schema_type(SchemaType::AnyValue))
        .property("object_name", ObjectBuilder::new().schema_type(SchemaType::AnyValue))
        .property("key", ObjectBuilder::new().schema_type(SchemaType::AnyValue))
        .into()
);

built_schema!(
    /// The `200` of a deploy: nothing changed, or with `wait` the finished deployment.
    DeployResult => AnyOfBuilder::new()
        .item(Ref::from_schema_name("DeployAnswer"))
        .item(Ref::from_schema_name("Deployment"))
        .item(Ref::from_schema_name("DryRun"))
        .into()
);
