//! The word enums as sea-orm column values (the `sea-orm` feature): the
//! server's entities store them as text.

/// Stores an enum of [`crate::words`] as its word in a text column, so
/// that a sea-orm entity's field can have the enum's type: what sea-orm's
/// `DeriveValueType` with `value_type = "String"` generates, written here
/// (the orphan rule wants the impls beside the types). A word the enum does
/// not know reads as an error.
macro_rules! stored_as_word {
    ($($type:ty),+ $(,)?) => {$(
        impl From<$type> for sea_orm::Value {
            fn from(value: $type) -> Self {
                value.as_str().into()
            }
        }

        impl sea_orm::TryGetable for $type {
            fn try_get_by<I: sea_orm::ColIdx>(
                res: &sea_orm::QueryResult,
                index: I,
            ) -> Result<Self, sea_orm::TryGetError> {
                let word = String::try_get_by(res, index)?;
                word.parse().map_err(|e| {
                    sea_orm::TryGetError::DbErr(sea_orm::DbErr::TryIntoErr {
                        from: "String",
                        into: stringify!($type),
                        source: std::sync::Arc::new(e),
                    })
                })
            }
        }

        impl sea_orm::sea_query::ValueType for $type {
            fn try_from(value: sea_orm::Value) -> Result<Self, sea_orm::sea_query::ValueTypeErr> {
                let word = <String as sea_orm::sea_query::ValueType>::try_from(value)?;
                word.parse().map_err(|_| sea_orm::sea_query::ValueTypeErr)
            }

            fn type_name() -> String {
                stringify!($type).to_owned()
            }

            fn array_type() -> sea_orm::sea_query::ArrayType {
                sea_orm::sea_query::ArrayType::String
            }

            fn column_type() -> sea_orm::sea_query::ColumnType {
                sea_orm::sea_query::ColumnType::String(sea_orm::sea_query::StringLen::None)
            }
        }

        impl sea_orm::sea_query::Nullable for $type {
            fn null() -> sea_orm::Value {
                sea_orm::Value::String(None)
            }
        }

        impl sea_orm::IntoActiveValue<$type> for $type {
            fn into_active_value(self) -> sea_orm::ActiveValue<$type> {
                sea_orm::ActiveValue::Set(self)
            }
        }

        impl sea_orm::sea_query::postgres_array::NotU8 for $type {}
    )+};
}

stored_as_word!(
    crate::deployment::DeploymentStatus,
    crate::deployment::HostResult,
    crate::kind::Delivery,
);
