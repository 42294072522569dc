//! What a Pingora error means for the client: classified by Pingora's
//! typed error (its `ErrorType` and `ErrorSource`), never by its message.

use pingora_error::{Error, ErrorSource, ErrorType};

/// Why proxying a request failed, as far as the answer is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Pingora (or a hook) asked for this status.
    Status(u16),
    /// Connecting, reading or writing timed out: `504`.
    Timeout,
    /// The upstream failed: `502`.
    Upstream,
    /// The client's connection failed: nothing can be written.
    ClientGone,
    /// The client sent something Pingora refused: `400`.
    BadRequest,
}

impl Cause {
    /// The cause of `e`.
    pub fn of(e: &Error) -> Cause {
        match e.etype() {
            ErrorType::HTTPStatus(code) => Cause::Status(*code),
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                Cause::Timeout
            }
            _ => match e.esource() {
                ErrorSource::Upstream => Cause::Upstream,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                        Cause::ClientGone
                    }
                    _ => Cause::BadRequest,
                },
                _ => Cause::Upstream,
            },
        }
    }

    /// The status the client gets; `0` when nothing can be written.
    pub fn status(self) -> u16 {
        match self {
            Cause::Status(code) => code,
            Cause::Timeout => 504,
            Cause::Upstream => 502,
            Cause::ClientGone => 0,
            Cause::BadRequest => 400,
        }
    }
}

/// Whether an error ended a close-delimited body the way a TLS peer that
/// skips `close_notify` does: the upstream connection closed (unexpected
/// EOF) while the body was read.
pub fn is_unnotified_close(e: &Error) -> bool {
    if e.esource() != &ErrorSource::Upstream {
        return false;
    }
    e.root_cause()
        .downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
}

/// Whether an error came from the client's side (it went away).
pub fn is_downstream(e: &Error) -> bool {
    e.esource() == &ErrorSource::Downstream
}
