//! Subcommands of the `edgelm` command, one module each.

pub mod inspect;
