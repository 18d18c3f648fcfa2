//! The Helios server core: the wire protocol, routing, rooms, and the network, with no JavaScript in it.
//!
//! The application (the JavaScript binding in Helios) registers handler ids in the [`Router`], starts a
//! [`Server`] with an [`App`] that receives batches of calls, and answers with batches of ops
//! ([`Server::apply`]).

// One audited exception: a socket option the socket crate does not offer (`net/listener.rs`).
#![deny(unsafe_code)]

pub mod app;
pub mod cluster;
pub mod config;
mod mirror;
mod net;
mod node;
pub mod pattern;
pub mod protocol;
pub mod rooms;
pub mod router;
mod server;
pub mod session;
pub mod stats;
mod sync;

pub use app::App;
pub use config::{Config, HealthCheck, ParseMode, RateLimit};
pub use net::{bind, TlsError, TlsIdentity};
pub use pattern::PatternError;
pub use rooms::{Broadcast, RoomError, Rooms};
pub use router::{HandlerId, Router};
pub use server::{BroadcastError, Server, StartError};
