//! ksql-server.properties: a lossless editor for Java `.properties` files (`document`),
//! the keys ksql-msk manages (`managed`), rendering a release's file from them
//! (`render`), and keeping secrets out of what is shown (`redact`).

mod document;
pub mod managed;
pub mod redact;
pub mod render;

pub use document::{escape, Document, JavaString, ParseError, MANAGED_MARKER};
pub use managed::managed_properties;
pub use render::{managed, managed_with_imds, render, Configured, Managed};
