//! Batches of `uint8` pixels made float32 in one pass: `v / 255`, standardised per channel
//! (`(v / 255 − mean) / sd`) when the plan asks. The arithmetic is libtorch's `raw / 255.0`,
//! `− mean`, `/ sd` in float32, the same IEEE operations in the same order (each rounded once,
//! no reciprocal or fused multiply-add), so results are unchanged bit for bit; the batch is read
//! once and written once instead of three passes with three allocations. The loop is compiled
//! three times, for AVX-512, AVX2 and the baseline, and the widest the CPU has is chosen at run
//! time.
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

pub struct ByteToFloat {
    /// `(mean, sd)` per channel as float32; `None`: `[0, 1]` only.
    stats: Option<Vec<(f32, f32)>>,
    channels: usize,
}

impl ByteToFloat {
    /// `[0, 1]` for `channels` channels, standardised with `stats` (one `(mean, sd)` per
    /// channel) when given.
    pub fn new(channels: usize, stats: Option<&[(f64, f64)]>) -> Result<Self> {
        if let Some(stats) = stats {
            if stats.len() != channels {
                return Err(Error::invalid_option("normalize", format!("{} channel statistics for images of {channels} channels", stats.len())));
            }
        }
        // Rounded to float32 as libtorch rounds a float64 tensor made float32.
        let stats = stats.map(|s| s.iter().map(|&(m, sd)| (m as f32, sd as f32)).collect());
        Ok(ByteToFloat { stats, channels })
    }

    /// `raw` (`uint8 [B, C, H, W]`, C the channels given to [`new`](Self::new)) as float32.
    pub fn apply(&self, raw: &Tensor) -> Result<Tensor> {
        let size = raw.size();
        if raw.kind() != Kind::Uint8 || size.len() != 4 || size[1] as usize != self.channels || raw.device() != Device::Cpu {
            return Err(Error::msg(format!("byte-to-float conversion of a {:?} {size:?} tensor on {:?}; expected uint8 [B, {}, H, W] on the CPU", raw.kind(), raw.device(), self.channels)));
        }
        let raw = raw.contiguous();
        let numel = raw.numel();
        let out = Tensor::f_empty(size.as_slice(), (Kind::Float, Device::Cpu))?;
        if numel == 0 {
            return Ok(out);
        }
        // SAFETY: `raw` is a contiguous uint8 CPU tensor of `numel` elements that this function
        // holds and only reads; `out` was just allocated by libtorch as a contiguous float32 CPU
        // tensor of `numel` elements, and no other handle to its storage exists while `floats`
        // lives.
        let bytes = unsafe { std::slice::from_raw_parts(raw.data_ptr() as *const u8, numel) };
        let floats = unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, numel) };
        let plane = (size[2] * size[3]) as usize;
        for (k, (plane_in, plane_out)) in bytes.chunks_exact(plane).zip(floats.chunks_exact_mut(plane)).enumerate() {
            match &self.stats {
                Some(stats) => {
                    let (mean, sd) = stats[k % self.channels];
                    simd::standardise(plane_in, plane_out, mean, sd);
                }
                None => simd::unit(plane_in, plane_out),
            }
        }
        Ok(out)
    }
}

/// The conversion loops, compiled for the widest vectors the CPU has.
mod simd {
    #[inline(always)]
    pub(super) fn standardise_body(input: &[u8], out: &mut [f32], mean: f32, sd: f32) {
        out.iter_mut().zip(input).for_each(|(o, &v)| *o = (f32::from(v) / 255.0 - mean) / sd);
    }

    #[inline(always)]
    pub(super) fn unit_body(input: &[u8], out: &mut [f32]) {
        out.iter_mut().zip(input).for_each(|(o, &v)| *o = f32::from(v) / 255.0);
    }

    macro_rules! dispatched {
        ($name:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
            pub fn $name($($arg: $ty),*) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f")]
                    fn wide($($arg: $ty),*) { $body($($arg),*) }
                    #[target_feature(enable = "avx2")]
                    fn narrow($($arg: $ty),*) { $body($($arg),*) }
                    if std::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU has AVX-512F, checked just above.
                        return unsafe { wide($($arg),*) };
                    }
                    if std::is_x86_feature_detected!("avx2") {
                        // SAFETY: the CPU has AVX2, checked just above.
                        return unsafe { narrow($($arg),*) };
                    }
                }
                $body($($arg),*)
            }
        };
    }

    dispatched!(standardise, standardise_body, (input: &[u8], out: &mut [f32], mean: f32, sd: f32));
    dispatched!(unit, unit_body, (input: &[u8], out: &mut [f32]));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_byte(channels: i64) -> Tensor {
        Tensor::arange(256, (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8).view([1, 1, 16, 16]).repeat([2, channels, 1, 1])
    }

    #[test]
    fn the_tables_give_libtorchs_float32_results_bit_for_bit() {
        let raw = every_byte(3);
        let unit = ByteToFloat::new(3, None).unwrap().apply(&raw).unwrap();
        assert!(unit.equal(&(&raw / 255.0)));
        let stats = [(0.485, 0.229), (0.456, 0.224), (0.406, 0.225)];
        let column = |f: fn(&(f64, f64)) -> f64| Tensor::from_slice(&stats.iter().map(f).collect::<Vec<f64>>()).view([1, 3, 1, 1]).to_kind(Kind::Float);
        let expected = (&raw / 255.0 - column(|s| s.0)) / column(|s| s.1);
        let standardised = ByteToFloat::new(3, Some(&stats)).unwrap().apply(&raw).unwrap();
        assert!(standardised.equal(&expected), "largest difference {}", (standardised - expected).abs().max().double_value(&[]));
    }

    #[test]
    fn the_vector_paths_equal_the_baseline_loop() {
        let input: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let (mut wide, mut baseline) = (vec![0f32; 1000], vec![0f32; 1000]);
        simd::standardise(&input, &mut wide, 0.456, 0.224);
        simd::standardise_body(&input, &mut baseline, 0.456, 0.224);
        assert_eq!(wide, baseline);
        simd::unit(&input, &mut wide);
        simd::unit_body(&input, &mut baseline);
        assert_eq!(wide, baseline);
    }

    #[test]
    fn a_tensor_of_another_shape_or_kind_is_refused() {
        let convert = ByteToFloat::new(3, None).unwrap();
        assert!(convert.apply(&every_byte(1)).is_err());
        assert!(convert.apply(&every_byte(3).to_kind(Kind::Float)).is_err());
        assert!(ByteToFloat::new(3, Some(&[(0.5, 0.2)])).is_err());
    }
}
