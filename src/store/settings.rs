//! Small named values shared by every replica (the ticket salt).

use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Set};

use super::entities::setting;

/// The generated Icinga ticket salt, when none is configured.
pub const TICKET_SALT: &str = "ticket_salt";

/// The value of `key`, storing `initial` first when there is none. Every
/// replica ends up with the first value stored.
pub async fn get_or_create(
    db: &impl ConnectionTrait,
    key: &str,
    initial: &str,
) -> Result<String, DbErr> {
    setting::Entity::insert(setting::ActiveModel {
        key: Set(key.to_owned()),
        value: Set(initial.to_owned()),
    })
    .on_conflict(
        OnConflict::column(setting::Column::Key)
            .do_nothing()
            .to_owned(),
    )
    .try_insert()
    .exec(db)
    .await?;
    setting::Entity::find_by_id(key.to_owned())
        .one(db)
        .await?
        .map(|row| row.value)
        .ok_or_else(|| DbErr::RecordNotFound(format!("setting {key}")))
}
