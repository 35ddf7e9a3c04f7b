//! Why a request body was refused or cut: the errors the body layer raises and the one error
//! mapping (error.rs) answers. Apart from body.rs, which needs the client's address from the
//! protection layer, so that the error mapping imports nothing that imports it back.

use std::error::Error as StdError;

use crate::capacity::CapacityError;

/// A request body that did not arrive in time (answered 408 `body_timeout`).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time: {what}")]
pub struct BodyTimeout {
    pub(super) what: String,
}

impl BodyTimeout {
    /// The timeout somewhere in an error's chain of causes, if that is what the error is.
    pub fn find<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a BodyTimeout> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(timeout) = e.downcast_ref::<BodyTimeout>() {
                return Some(timeout);
            }
            next = e.source();
        }
        None
    }
}

/// A body's memory could not be had as it arrived (429 or 503, as its cause says).
#[derive(Debug, thiserror::Error)]
#[error("no memory for the request body as it arrived: {0}")]
pub struct BodyRefused(pub CapacityError);

impl BodyRefused {
    /// The refusal somewhere in an error's chain of causes, if that is what the error is.
    pub fn find<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a BodyRefused> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(refused) = e.downcast_ref::<BodyRefused>() {
                return Some(refused);
            }
            next = e.source();
        }
        None
    }
}

/// A body whose declared size is over its route's limit (answered 413 before it is read).
#[derive(Debug, thiserror::Error)]
#[error("the request body ({size} bytes) is larger than this route accepts ({max} bytes)")]
pub struct BodyTooLarge {
    /// The declared size.
    pub size: u64,
    /// The route's limit.
    pub max: usize,
}
