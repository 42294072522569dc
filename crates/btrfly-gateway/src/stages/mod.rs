//! The stages of the request path, in order: [`auth`] → [`route`] →
//! [`classify`] → [`by_mode`], which sends playback to [`replay`] and
//! record mode through [`single_flight`] to [`record`].

pub mod auth;
pub mod by_mode;
pub mod classify;
pub mod record;
pub mod replay;
pub mod route;
pub mod single_flight;
