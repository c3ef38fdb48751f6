//! Network ADS: parameters, initialisation (D, F, W_fast) and the trained network (docs/design.md §2).

pub mod error;
pub mod init;
pub mod method;
pub mod network;
pub mod params;
pub mod quantize;
pub mod store;
pub mod synapse;

pub use network::transpose;

pub use error::SnnError;
pub use method::Method;
pub use network::Network;
pub use params::SnnParams;
pub use quantize::QuantScope;
pub use synapse::{MAX_EXTRA_SYNAPSE_TYPES, SynapseType};
