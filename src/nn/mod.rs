//! Building blocks of the networks, composed by the runners (`session`, `embed`) as each
//! architecture's recipe says: norms, MLPs, causal attention over the KV cache (and cross-attention over a fixed one),
//! bidirectional attention, rotary positions. They work on buffers the runner owns and passes in, and allocate nothing.

pub mod attention;
pub mod bidirectional;
pub mod mlp;
pub mod norm;
pub mod rope;
