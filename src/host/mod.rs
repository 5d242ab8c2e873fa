//! Files on the host, done so that nothing planted under the state directory can
//! redirect them (docs/RELIABILITY.md, "Planted links and the state directory").

mod dir;

pub use dir::*;
