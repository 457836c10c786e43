//! The closing report of a conversion: tensors, bytes, bits per weight, quantization error
//! (relative RMSE, and what the scale search gained over plain max-scaling), warnings.

use std::collections::BTreeMap;
use std::io::{self, Write};

use edgelm::format::DType;

use crate::quantize::ErrorStats;

/// One model tensor as written.
#[derive(Clone, Debug)]
pub struct TensorRow {
    /// Name in the packed file.
    pub name: String,
    /// Stored type.
    pub dtype: DType,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Stored bytes.
    pub bytes: u64,
    /// Error relative to the source values.
    pub stats: ErrorStats,
    /// Stored without any change of values.
    pub exact: bool,
    /// Stored decoded (`--simulate`): the bytes of the mix's GGUF blocks it stands for.
    pub simulated: Option<u64>,
}

/// Everything the converter reports.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// What was converted.
    pub source: String,
    /// The requested type, as given.
    pub quant: String,
    /// Size of the packed file.
    pub file_size: u64,
    /// Tokenizer table tensors written.
    pub tokenizer_tensors: usize,
    /// Their bytes.
    pub tokenizer_bytes: u64,
    /// Model tensors, in file order.
    pub rows: Vec<TensorRow>,
    /// Fallbacks and other notes.
    pub warnings: Vec<String>,
}

/// The gain column: exact copies, the scale search's gain for quantized data, or nothing.
fn fmt_gain(s: &ErrorStats, exact: bool, quantized: bool) -> String {
    match s.search_gain() {
        _ if exact => "exact".into(),
        Some(g) if quantized => format!("{:.1}%", g * 100.0),
        _ => "-".into(),
    }
}

impl Report {
    /// Summed error over all model tensors.
    pub fn total(&self) -> ErrorStats {
        let mut t = ErrorStats::default();
        self.rows.iter().for_each(|r| t.add(&r.stats));
        t
    }

    /// Model weights (values) written.
    pub fn weights(&self) -> u64 {
        self.rows.iter().map(|r| r.shape.iter().product::<u64>()).sum()
    }

    /// Storage bits per model weight (tokenizer tables excluded).
    pub fn bits_per_weight(&self) -> f64 {
        let bytes: u64 = self.rows.iter().map(|r| r.bytes).sum();
        bytes as f64 * 8.0 / self.weights().max(1) as f64
    }

    /// Prints the report; `verbose` adds one line per tensor.
    pub fn print(&self, out: &mut impl Write, verbose: bool) -> io::Result<()> {
        writeln!(out, "source: {} ({})", self.source, self.quant)?;
        for w in &self.warnings {
            writeln!(out, "warning: {w}")?;
        }
        if verbose {
            writeln!(
                out,
                "{:<32} {:<5} {:>16} {:>12} {:>10} {:>7}",
                "tensor", "type", "shape", "bytes", "rel.RMSE", "gain"
            )?;
            for r in &self.rows {
                let shape = format!("{:?}", r.shape);
                let rmse = r.stats.rel_rmse();
                let gain = fmt_gain(&r.stats, r.exact, r.dtype.is_quantized());
                writeln!(
                    out,
                    "{:<32} {:<5} {shape:>16} {:>12} {rmse:>10.3e} {gain:>7}",
                    r.name,
                    r.dtype.name(),
                    r.bytes
                )?;
            }
        }
        let mut by_type: BTreeMap<&str, (DType, usize, u64, u64, ErrorStats, bool)> = BTreeMap::new();
        for r in &self.rows {
            let e = by_type
                .entry(r.dtype.name())
                .or_insert((r.dtype, 0, 0, 0, ErrorStats::default(), true));
            e.1 += 1;
            e.2 += r.shape.iter().product::<u64>();
            e.3 += r.bytes;
            e.4.add(&r.stats);
            e.5 &= r.exact;
        }
        writeln!(
            out,
            "{:<6} {:>7} {:>13} {:>13} {:>7} {:>10} {:>7}",
            "type", "tensors", "weights", "bytes", "bits/w", "rel.RMSE", "gain"
        )?;
        for (name, (dtype, n, weights, bytes, stats, exact)) in &by_type {
            let bits = *bytes as f64 * 8.0 / (*weights).max(1) as f64;
            writeln!(
                out,
                "{name:<6} {n:>7} {weights:>13} {bytes:>13} {bits:>7.3} {:>10.3e} {:>7}",
                stats.rel_rmse(),
                fmt_gain(stats, *exact, dtype.is_quantized())
            )?;
        }
        let total = self.total();
        let mut searched = ErrorStats::default();
        self.rows
            .iter()
            .filter(|r| r.dtype.is_quantized() && !r.exact)
            .for_each(|r| searched.add(&r.stats));
        writeln!(
            out,
            "total  {:>7} {:>13} {:>13} {:>7.3} {:>10.3e} {:>7}",
            self.rows.len(),
            self.weights(),
            self.rows.iter().map(|r| r.bytes).sum::<u64>(),
            self.bits_per_weight(),
            total.rel_rmse(),
            fmt_gain(&searched, self.rows.iter().all(|r| r.exact), true)
        )?;
        if self.rows.iter().any(|r| r.simulated.is_some()) {
            let bytes: u64 = self.rows.iter().map(|r| r.simulated.unwrap_or(r.bytes)).sum();
            writeln!(
                out,
                "simulated mix: {bytes} bytes as its own types, {:.3} bits per weight",
                bytes as f64 * 8.0 / self.weights().max(1) as f64
            )?;
        }
        let mut worst: Vec<&TensorRow> = self.rows.iter().filter(|r| !r.exact).collect();
        worst.sort_by(|a, b| b.stats.rel_rmse().total_cmp(&a.stats.rel_rmse()));
        if !worst.is_empty() {
            let list: Vec<String> = worst
                .iter()
                .take(3)
                .map(|r| format!("{} {:.3e}", r.name, r.stats.rel_rmse()))
                .collect();
            writeln!(out, "largest relative RMSE: {}", list.join(", "))?;
        }
        writeln!(
            out,
            "wrote {} bytes: {} model tensors + {} tokenizer tensors ({} bytes)",
            self.file_size,
            self.rows.len(),
            self.tokenizer_tensors,
            self.tokenizer_bytes
        )
    }
}
