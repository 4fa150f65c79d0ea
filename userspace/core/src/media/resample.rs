//! Sample-rate conversion of one stream's audio to the recording's rate, with a band-limited
//! resampler (rubato's FFT resampler): a G.711 leg in a 16 kHz recording, or a 16 kHz codec in
//! an 8 kHz one.
//!
//! The resampler runs over a stretch of continuous audio (a talk spurt). Its input is a stream
//! position in the codec's frames; its output keeps the position right in the recording's
//! frames, its filter delay taken out. A gap in the input (silence suppression) ends the
//! stretch: the tail is flushed and the next stretch starts afresh.

use audioadapter_buffers::direct::SequentialSlice;
use rubato::{Fft, FixedSync, Resampler as _};

/// Input frames per resampler call: 10 ms at every common rate.
fn chunk_for(rate: u32) -> usize {
    (rate / 100).max(1) as usize
}

#[derive(Debug, thiserror::Error)]
#[error("cannot resample {from} Hz to {to} Hz")]
pub struct ResampleError {
    pub from: u32,
    pub to: u32,
}

pub struct Resample {
    from: u32,
    to: u32,
    inner: Fft<f32>,
    /// Input not yet given to the resampler (less than one chunk).
    pending: Vec<f32>,
    /// The input position (codec frames) right after the last sample pushed.
    next_in: Option<i64>,
    /// Output position (recording frames) of the next output sample.
    next_out: i64,
    /// Output frames still to drop: the filter's delay at the start of a stretch.
    skip: usize,
    in_buf: Vec<f32>,
    out_buf: Vec<f32>,
}

impl Resample {
    pub fn new(from: u32, to: u32) -> Result<Resample, ResampleError> {
        let err = || ResampleError { from, to };
        if from == 0 || to == 0 {
            return Err(err());
        }
        let inner = Fft::<f32>::new(
            from as usize,
            to as usize,
            chunk_for(from),
            1,
            FixedSync::Both,
        )
        .map_err(|_| err())?;
        let out_max = inner.output_frames_max();
        let in_max = inner.input_frames_max();
        Ok(Resample {
            from,
            to,
            skip: inner.output_delay(),
            inner,
            pending: Vec::new(),
            next_in: None,
            next_out: 0,
            in_buf: vec![0.0; in_max],
            out_buf: vec![0.0; out_max],
        })
    }

    pub fn rates(&self) -> (u32, u32) {
        (self.from, self.to)
    }

    /// The output position of an input position.
    fn out_pos(&self, pos_in: i64) -> i64 {
        (pos_in as i128 * self.to as i128 / self.from as i128) as i64
    }

    /// Resamples `samples`, whose first sample is at input position `pos_in`. Calls `emit` with
    /// each run of output and the output position of its first sample. A `pos_in` that does
    /// not continue the last push starts a new stretch (the old one is flushed first).
    pub fn push(&mut self, pos_in: i64, samples: &[i16], emit: &mut dyn FnMut(i64, &[i16])) {
        if self.next_in != Some(pos_in) {
            self.flush(emit);
            self.next_out = self.out_pos(pos_in);
            self.skip = self.inner.output_delay();
        }
        self.next_in = Some(pos_in + samples.len() as i64);
        self.pending
            .extend(samples.iter().map(|&s| s as f32 / 32768.0));
        self.run(emit);
    }

    /// Pushes out what the filter still holds of the current stretch, padding with silence,
    /// so the stretch comes out exactly as long as it went in.
    pub fn flush(&mut self, emit: &mut dyn FnMut(i64, &[i16])) {
        let Some(end_in) = self.next_in.take() else {
            return;
        };
        let target = self.out_pos(end_in);
        let chunk = self.inner.input_frames_next().max(1);
        let rounds = (self.inner.output_delay() + self.pending.len()) / chunk + 4;
        for _ in 0..rounds {
            let owed = (target - self.next_out).max(0) as usize;
            if owed == 0 {
                break;
            }
            let pad = chunk - self.pending.len() % chunk;
            self.pending.resize(self.pending.len() + pad, 0.0);
            self.run_limited(emit, Some(owed));
        }
        self.pending.clear();
        self.inner.reset();
    }

    fn run(&mut self, emit: &mut dyn FnMut(i64, &[i16])) {
        self.run_limited(emit, None)
    }

    /// Runs whole chunks of pending input; emits at most `limit` output frames in all.
    fn run_limited(&mut self, emit: &mut dyn FnMut(i64, &[i16]), mut limit: Option<usize>) {
        let mut pcm: Vec<i16> = Vec::new();
        loop {
            let need = self.inner.input_frames_next();
            if self.pending.len() < need || limit == Some(0) {
                break;
            }
            self.in_buf[..need].copy_from_slice(&self.pending[..need]);
            self.pending.drain(..need);
            let frames_out = self.inner.output_frames_next();
            let (Ok(input), Ok(mut output)) = (
                SequentialSlice::new(&self.in_buf[..need], 1, need),
                SequentialSlice::new_mut(&mut self.out_buf[..frames_out], 1, frames_out),
            ) else {
                break;
            };
            let Ok((_, produced)) = self.inner.process_into_buffer(&input, &mut output, None)
            else {
                break;
            };
            let mut out = &self.out_buf[..produced];
            let drop = self.skip.min(out.len());
            self.skip -= drop;
            out = &out[drop..];
            if let Some(l) = limit.as_mut() {
                let take = out.len().min(*l);
                out = &out[..take];
                *l -= take;
            }
            if out.is_empty() {
                continue;
            }
            pcm.clear();
            pcm.extend(
                out.iter()
                    .map(|&x| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
            );
            emit(self.next_out, &pcm);
            self.next_out += pcm.len() as i64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f64, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|i| {
                ((i as f64 * 2.0 * std::f64::consts::PI * hz / rate as f64).sin() * amp) as i16
            })
            .collect()
    }

    fn power(x: &[i16], rate: u32, hz: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * hz / rate as f64;
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &v in x {
            let s0 = v as f64 / 32768.0 + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - c * s1 * s2) / (x.len() as f64).powi(2)
    }

    /// Every packet goes in, the same length comes out at the new rate, in place, and the tone
    /// is still the tone.
    fn round(from: u32, to: u32) {
        let mut r = Resample::new(from, to).expect("resampler");
        let per_packet = (from / 50) as usize;
        let input = tone(from, 700.0, per_packet * 50, 12000.0);
        let mut out: Vec<(i64, Vec<i16>)> = Vec::new();
        for (k, p) in input.chunks(per_packet).enumerate() {
            r.push((k * per_packet) as i64, p, &mut |pos, s| {
                out.push((pos, s.to_vec()))
            });
        }
        r.flush(&mut |pos, s| out.push((pos, s.to_vec())));
        let mut flat = Vec::new();
        for (pos, s) in &out {
            assert_eq!(*pos as usize, flat.len(), "runs are contiguous from 0");
            flat.extend_from_slice(s);
        }
        let want = (input.len() as u64 * to as u64 / from as u64) as usize;
        assert!(
            flat.len().abs_diff(want) <= (to / 100) as usize,
            "{from}->{to}: {} frames, want {want}",
            flat.len()
        );
        let mid = &flat[want / 4..want * 3 / 4];
        assert!(
            power(mid, to, 700.0) > 0.02,
            "{from}->{to}: the tone survives"
        );
        // No phase slip: the output at a known frame matches the tone at that time.
        let expect = tone(to, 700.0, want, 12000.0);
        let err: f64 = mid
            .iter()
            .zip(&expect[want / 4..want * 3 / 4])
            .map(|(a, b)| ((*a as f64) - (*b as f64)).abs())
            .sum::<f64>()
            / mid.len() as f64;
        assert!(err < 600.0, "{from}->{to}: mean error {err}");
    }

    #[test]
    fn up_and_down_keep_tone_length_and_place() {
        round(8000, 16000);
        round(8000, 48000);
        round(16000, 8000);
        round(48000, 16000);
        round(32000, 16000);
    }

    #[test]
    fn a_gap_starts_a_new_stretch_at_its_own_place() {
        let mut r = Resample::new(8000, 16000).expect("resampler");
        let mut out: Vec<(i64, usize)> = Vec::new();
        let p = tone(8000, 500.0, 160, 8000.0);
        r.push(0, &p, &mut |pos, s| out.push((pos, s.len())));
        r.push(160, &p, &mut |pos, s| out.push((pos, s.len())));
        // Two seconds of silence suppression, then the next talk spurt.
        r.push(16_320, &p, &mut |pos, s| out.push((pos, s.len())));
        r.flush(&mut |pos, s| out.push((pos, s.len())));
        let first: usize = out.iter().filter(|(p, _)| *p < 32_000).map(|x| x.1).sum();
        let second: usize = out.iter().filter(|(p, _)| *p >= 32_000).map(|x| x.1).sum();
        assert_eq!(first, 640);
        assert_eq!(second, 320);
        assert_eq!(
            out.iter().find(|(p, _)| *p >= 32_000).map(|x| x.0),
            Some(32_640)
        );
    }
}
