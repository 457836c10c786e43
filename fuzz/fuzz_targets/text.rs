//! Shared by the text targets: the tokenizers and chat templates of real models (packed files in
//! `$EDGELM_FUZZ_MODELS`, default `fuzz/models`), and fuzz input turned into text that spells
//! any of their special and added tokens.

use std::path::PathBuf;
use std::sync::OnceLock;

use edgelm::chat::ChatTemplate;
use edgelm::format::PackedFile;
use edgelm::format::meta::TokenKind;
use edgelm::tokenizer::Tokenizer;

/// One model's text side.
pub struct Vocab {
    /// The file name (for messages).
    pub name: String,
    /// Its tokenizer.
    pub tok: Tokenizer,
    /// Its chat template (the model's own, or the fallback `edgelm chat` uses).
    pub template: ChatTemplate,
    /// The spelling of every special and added token.
    pub specials: Vec<String>,
    /// Byte-level BPE: decoding the ids gives back the text exactly.
    pub byte_level: bool,
}

impl Vocab {
    /// Whether `id` is a control token other than the unknown token (which WordPiece produces
    /// for characters outside its vocabulary).
    pub fn is_control(&self, id: u32) -> bool {
        self.tok.is_special(id) && self.tok.spec().unk != Some(id)
    }
}

/// Every `*.edgelm` file of the models folder, loaded once.
pub fn vocabs() -> &'static [Vocab] {
    static VOCABS: OnceLock<Vec<Vocab>> = OnceLock::new();
    VOCABS.get_or_init(|| {
        let dir =
            std::env::var_os("EDGELM_FUZZ_MODELS").map_or_else(|| PathBuf::from("models"), PathBuf::from);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (see fuzz/README.md: the text targets need packed models)",
                    dir.display()
                )
            })
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "edgelm"))
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no *.edgelm files in {}", dir.display());
        paths.iter().map(|p| load(p)).collect()
    })
}

fn load(path: &std::path::Path) -> Vocab {
    let file = PackedFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tok = Tokenizer::from_packed(&file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let template = ChatTemplate::for_tokenizer(&tok, file.meta().chat_template.as_deref())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let specials = (0..tok.vocab_size() as u32)
        .filter(|&id| matches!(tok.kind(id), Some(TokenKind::Special | TokenKind::Added)))
        .filter_map(|id| std::str::from_utf8(tok.token_bytes(id)?).ok().map(str::to_owned))
        .filter(|s| !s.is_empty())
        .collect();
    let byte_level = file.meta().tokenizer.model == edgelm::format::meta::TokenizerModel::BpeByteLevel;
    Vocab {
        name: path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        tok,
        template,
        specials,
        byte_level,
    }
}

/// Text from fuzz bytes: `0xFF hi lo` spells special token `hi·256 + lo` (modulo their
/// number), `0xFE` ends a part (chat targets split messages there), other bytes are UTF-8
/// (invalid sequences become U+FFFD).
pub fn parts(v: &Vocab, data: &[u8]) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            0xFF if !v.specials.is_empty() => {
                let hi = usize::from(data.get(i + 1).copied().unwrap_or(0));
                let lo = usize::from(data.get(i + 2).copied().unwrap_or(0));
                let last = parts.last_mut().expect("one part");
                last.push_str(&v.specials[(hi * 256 + lo) % v.specials.len()]);
                i += 3;
            }
            0xFE => {
                parts.push(String::new());
                i += 1;
            }
            _ => {
                let end = data[i..]
                    .iter()
                    .position(|&b| b >= 0xFE)
                    .map_or(data.len(), |n| i + n);
                parts
                    .last_mut()
                    .expect("one part")
                    .push_str(&String::from_utf8_lossy(&data[i..end]));
                i = end;
            }
        }
    }
    parts
}
