//! The HTTP edge: extractors, the Director query conventions, response
//! rendering and the middleware every request passes through.

pub mod body;
pub mod conditions;
pub mod json;
pub mod middleware;
pub mod observe;
pub mod query;
