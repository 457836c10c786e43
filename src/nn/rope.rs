//! Rotary position embeddings: per-pair frequencies (with long-context scaling) and the
//! cosines and sines of a position's angles.

use crate::format::meta::{Rope, RopeScaling};

/// Frequencies of one model's rotary embedding.
#[derive(Clone, Debug)]
pub struct RopeTable {
    inv_freq: Vec<f32>,
}

impl RopeTable {
    /// Frequencies `theta^(-2i/dims)`, scaled as the model asks (computed in f32 like the
    /// reference implementation, so angles match it bit for bit).
    pub fn new(rope: &Rope) -> RopeTable {
        let dims = rope.dims;
        let mut inv_freq: Vec<f32> = (0..dims / 2)
            .map(|i| 1.0 / rope.theta.powf((2 * i) as f32 / dims as f32))
            .collect();
        match rope.scaling {
            None => {}
            Some(RopeScaling::Linear { factor }) => inv_freq.iter_mut().for_each(|f| *f /= factor),
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position,
            }) => {
                let old = original_max_position as f32;
                let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
                for f in &mut inv_freq {
                    let wavelen = 2.0 * std::f32::consts::PI / *f;
                    if wavelen > low_wavelen {
                        *f /= factor;
                    } else if wavelen >= high_wavelen {
                        let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                        *f = (1.0 - smooth) * *f / factor + smooth * *f;
                    }
                }
            }
        }
        RopeTable { inv_freq }
    }

    /// Number of rotated pairs.
    pub fn pairs(&self) -> usize {
        self.inv_freq.len()
    }

    /// Writes the cosines and sines of position `pos` (may be negative, to rotate back).
    pub fn angles(&self, pos: i64, cos: &mut [f32], sin: &mut [f32]) {
        for ((c, s), &f) in cos.iter_mut().zip(sin.iter_mut()).zip(&self.inv_freq) {
            let angle = f64::from(pos as f32 * f);
            *c = angle.cos() as f32;
            *s = angle.sin() as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::meta::RopeLayout;

    fn rope(scaling: Option<RopeScaling>) -> Rope {
        Rope {
            layout: RopeLayout::Neox,
            theta: 500000.0,
            dims: 128,
            scaling,
        }
    }

    #[test]
    fn plain_frequencies() {
        let t = RopeTable::new(&Rope {
            theta: 10000.0,
            dims: 4,
            ..rope(None)
        });
        assert_eq!(t.inv_freq, vec![1.0, 0.01]);
        let (mut c, mut s) = ([0.0; 2], [0.0; 2]);
        t.angles(2, &mut c, &mut s);
        assert!((c[0] - 2f32.cos()).abs() < 1e-7 && (s[1] - 0.02f32.sin()).abs() < 1e-7);
    }

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let plain = RopeTable::new(&rope(None));
        let scaled = RopeTable::new(&rope(Some(RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position: 8192,
        })));
        assert_eq!(scaled.inv_freq[0], plain.inv_freq[0]);
        assert_eq!(scaled.inv_freq[63], plain.inv_freq[63] / 8.0);
        let mid = (0..64)
            .find(|&i| scaled.inv_freq[i] != plain.inv_freq[i])
            .unwrap();
        assert!(
            scaled.inv_freq[mid] < plain.inv_freq[mid] && scaled.inv_freq[mid] > plain.inv_freq[mid] / 8.0
        );
    }
}
