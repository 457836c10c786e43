//! Constrained generation: llama.cpp's GBNF grammars and JSON schemas (turned into GBNF)
//! mask the tokens that cannot continue the text, so the output always parses.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use edgelm::grammar::{Grammar, GrammarMatcher, TokenTable};
//! # let model: edgelm::model::Model = unimplemented!();
//! let grammar = Arc::new(Grammar::parse(r#"root ::= "yes" | "no""#)?);
//! let table = Arc::new(TokenTable::new(model.tokenizer())); // once per model
//! let matcher = GrammarMatcher::new(grammar, table);
//! // sampler.set_grammar(Some(matcher)); then generate as usual.
//! # Ok(())
//! # }
//! ```

mod compile;
pub mod json_schema;
mod matcher;
mod parse;
mod vocab;

#[cfg(test)]
mod tests;

pub use compile::Grammar;
pub use matcher::GrammarMatcher;
pub use vocab::TokenTable;

/// Why a grammar or schema is rejected, or a token does not fit the grammar.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// GBNF syntax error.
    #[error("grammar line {line}, column {column}: {message}")]
    Parse {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The grammar parses but cannot be used (undefined rule, left recursion, too large).
    #[error("grammar: {0}")]
    Invalid(String),
    /// A JSON schema the converter does not support or that is malformed.
    #[error("JSON schema at {path}: {message}")]
    Schema {
        /// JSON pointer of the offending schema (`#/properties/name`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A token the grammar does not allow at this point, or a grammar too ambiguous to follow.
    #[error("grammar: {0}")]
    Rejected(String),
}

impl Grammar {
    /// Any JSON object (for OpenAI's `response_format: {"type": "json_object"}`).
    pub fn json_object() -> Grammar {
        Grammar::from_json_schema(&serde_json::json!({"type": "object"}))
            .expect("the built-in object schema converts")
    }

    /// The grammar of JSON texts that satisfy `schema` (see [`json_schema::to_gbnf`]).
    pub fn from_json_schema(schema: &serde_json::Value) -> Result<Grammar, GrammarError> {
        Grammar::parse(&json_schema::to_gbnf(schema)?)
    }
}
