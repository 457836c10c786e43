//! `edgelm tokenize MODEL TEXT`: token ids as a JSON array.

use std::io::Write;
use std::path::PathBuf;

use edgelm::model::Model;

/// Arguments of `edgelm tokenize`.
#[derive(clap::Args)]
pub struct TokenizeArgs {
    /// The packed model file.
    pub model: PathBuf,
    /// The text (no chat template is applied).
    pub text: String,
    /// Do not add the model's BOS/EOS tokens.
    #[arg(long)]
    pub no_special: bool,
    /// Turn special-token text in TEXT (`<|im_end|>`) into those control tokens; without it
    /// the text is tokenized as plain text.
    #[arg(long, conflicts_with = "no_special")]
    pub special: bool,
}

/// Prints the ids.
pub fn run(args: TokenizeArgs) -> anyhow::Result<()> {
    let file = super::common::open(&args.model)?;
    let model = Model::from_packed(file).map_err(|e| anyhow::anyhow!("{}: {e}", args.model.display()))?;
    let ids = super::encode_text(&model, &args.text, !args.no_special, args.special)?;
    writeln!(std::io::stdout(), "{}", serde_json::to_string(&ids)?)?;
    Ok(())
}
