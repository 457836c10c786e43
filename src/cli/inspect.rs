//! `edgelm inspect FILE`: what a packed file holds.

use std::path::PathBuf;

use edgelm::format::PackedFile;

/// Arguments of `edgelm inspect`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// The packed model file.
    pub file: PathBuf,
}

/// Prints the file's summary.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let file = PackedFile::open(&args.file)?;
    println!("{}: {} bytes, {} tensors", args.file.display(), file.file_size(), file.tensors().len());
    Ok(())
}
