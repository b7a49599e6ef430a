//! Authentication: passwords, remembered credentials, throttling of wrong
//! ones, and the layer that turns an `Authorization` header into a caller.

pub mod authenticator;
pub mod hashing;
pub mod layer;
pub mod password;
pub mod throttle;

pub use authenticator::Authenticator;
pub use throttle::Throttle;
