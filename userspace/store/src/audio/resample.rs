//! A rational polyphase windowed-sinc resampler for interleaved 16-bit audio: it feeds libopus
//! 48 kHz from the rates the store may record at that libopus does not take (32 and 44.1 kHz).
//!
//! Ours rather than a crate: ~100 lines for one fixed use (speech, to 48 kHz), and its delay must
//! be known exactly to go into the Ogg Opus pre-skip.

/// Filter taps per output sample (per phase).
const TAPS: usize = 32;
/// Cutoff as a fraction of the lower Nyquist frequency: room for the transition band.
const CUTOFF: f64 = 0.9;

pub struct Resampler {
    up: usize,
    down: usize,
    channels: usize,
    /// `up` phases of `TAPS` coefficients, phase-major, newest input first.
    bank: Vec<f32>,
    /// Interleaved input: `TAPS - 1` frames of history, then what is not yet used.
    buf: Vec<f32>,
    /// Position of the next output, in input frames × `up`, from the start of `buf`.
    pos: usize,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Resampler {
    pub fn new(from: u32, to: u32, channels: u16) -> Resampler {
        let g = gcd(from as usize, to as usize);
        let (up, down) = (to as usize / g, from as usize / g);
        let n = up * TAPS;
        let centre = (n - 1) as f64 / 2.0;
        // Cutoff in cycles per sample of the upsampled signal.
        let fc = CUTOFF * 0.5 / up.max(down) as f64;
        let proto: Vec<f64> = (0..n)
            .map(|k| {
                let x = k as f64 - centre;
                let sinc = if x == 0.0 {
                    2.0 * fc
                } else {
                    (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
                };
                let w = 2.0 * std::f64::consts::PI * k as f64 / (n - 1) as f64;
                let blackman = 0.42 - 0.5 * w.cos() + 0.08 * (2.0 * w).cos();
                up as f64 * sinc * blackman
            })
            .collect();
        let mut bank = vec![0f32; n];
        for p in 0..up {
            for j in 0..TAPS {
                bank[p * TAPS + j] = proto[p + j * up] as f32;
            }
        }
        let channels = usize::from(channels.max(1));
        Resampler {
            up,
            down,
            channels,
            bank,
            buf: vec![0.0; (TAPS - 1) * channels],
            pos: (TAPS - 1) * up,
        }
    }

    /// How late the output is, in output samples (rounded): goes into the pre-skip.
    pub fn delay(&self) -> u64 {
        self.exact_delay().round() as u64
    }

    /// The filter's centre, in output samples.
    fn exact_delay(&self) -> f64 {
        (self.up * TAPS - 1) as f64 / 2.0 / self.down as f64
    }

    /// Resamples whole interleaved frames, appending to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.buf.extend(input.iter().map(|&s| f32::from(s)));
        let frames = self.buf.len() / self.channels;
        while self.pos / self.up < frames {
            let newest = self.pos / self.up;
            let phase = &self.bank[(self.pos % self.up) * TAPS..][..TAPS];
            for c in 0..self.channels {
                let mut acc = 0f32;
                for (j, &h) in phase.iter().enumerate() {
                    acc += h * self.buf[(newest - j) * self.channels + c];
                }
                out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
            }
            self.pos += self.down;
        }
        // Keep the history the next outputs need.
        let first = (self.pos / self.up).saturating_sub(TAPS - 1).min(frames);
        self.buf.drain(..first * self.channels);
        self.pos -= first * self.up;
    }

    /// Pushes out what the filter still holds (zeros after the input's end).
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        let zeros = vec![0i16; TAPS * self.channels];
        self.process(&zeros, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_keeps_its_frequency_level_and_timing() {
        for from in [32_000u32, 44_100] {
            let mut r = Resampler::new(from, 48_000, 1);
            let input: Vec<i16> = (0..from)
                .map(|i| {
                    let t = f64::from(i) / f64::from(from);
                    ((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 10_000.0) as i16
                })
                .collect();
            let mut out = Vec::new();
            for c in input.chunks(441) {
                r.process(c, &mut out);
            }
            r.flush(&mut out);
            let d = r.exact_delay();
            assert!(
                out.len() as f64 >= 48_000.0 + d,
                "{from}: {} samples",
                out.len()
            );
            // Compared with the ideal 48 kHz tone, delay removed.
            let mut err = 0f64;
            for (i, &s) in out.iter().enumerate().take(47_000).skip(1000) {
                let t = (i as f64 - d) / 48_000.0;
                let want = (2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 10_000.0;
                err = err.max((f64::from(s) - want).abs());
            }
            assert!(err < 300.0, "{from}: max error {err}");
        }
    }
}
