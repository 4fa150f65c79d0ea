//! In-band DTMF: a Goertzel detector over 8 kHz linear audio of one direction.
//!
//! Audio is cut into blocks of [`BLOCK`] samples (12.75 ms). Each block measures the eight
//! DTMF frequencies (ITU-T Q.23) with the Goertzel recurrence and is a hit for a digit when:
//! the strongest row and column tone are each above [`MIN_AMPLITUDE`]; the twist is within
//! 8 dB (column weaker) or 4 dB (row weaker); each is at least 6 dB above the other tones of
//! its group; the two carry at least half the block's energy (speech and noise fail here);
//! and the block's two halves hold about the same energy (the edge of a tone fails here). A
//! key is down after [`HITS_TO_PRESS`] hits in a row (40 ms of tone always gives them; 20 ms
//! never does) and up after
//! [`MISSES_TO_RELEASE`] blocks without it; the digit is reported at release, with its length,
//! so one press is one digit. No allocation after [`DtmfDetector::new`].

/// Samples per Goertzel block: wide enough apart bins for 697/770 Hz at 8 kHz, short enough
/// for 40 ms tones.
pub const BLOCK: usize = 102;
/// Blocks in a row that hold the same digit before the key counts as pressed: any tone of
/// 40 ms covers two whole blocks.
pub const HITS_TO_PRESS: u8 = 2;
/// Blocks in a row without the digit before the key counts as released.
pub const MISSES_TO_RELEASE: u8 = 3;
/// Least peak amplitude of each tone, in 16-bit linear units (about -38 dBFS).
pub const MIN_AMPLITUDE: f32 = 400.0;

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Power ratios: 8 dB normal twist, 4 dB reverse twist, 6 dB over the rest of a group.
const NORMAL_TWIST: f32 = 0.158;
const REVERSE_TWIST: f32 = 0.398;
const GROUP_MARGIN: f32 = 0.25;
/// Share of the block's energy the two tones must carry.
const MIN_TONE_SHARE: f32 = 0.5;
/// The weaker half of a block holds at least this share of the stronger half's energy: a
/// tone that starts or stops inside the block is no hit, so two hits take two nearly full
/// blocks (at least 21 ms of tone) and a 20 ms blip never presses a key.
const MIN_HALF_BALANCE: f32 = 0.65;

/// A digit whose key was released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detected {
    /// One of `0-9 * # A-D`.
    pub digit: char,
    /// How long the tone was heard, in whole blocks.
    pub duration_ms: u32,
}

/// The detector of one direction of one stream.
#[derive(Clone, Debug)]
pub struct DtmfDetector {
    /// `2 cos(2π f / 8000)` for the rows then the columns.
    coeff: [f32; 8],
    /// Goertzel state `s[n-1]` and `s[n-2]` per frequency, as lanes the compiler vectorises.
    s1: [f32; 8],
    s2: [f32; 8],
    energy: f32,
    /// Energy of the block's first half.
    first_half: f32,
    filled: usize,
    /// The digit of the last blocks and how many hit in a row.
    candidate: Option<char>,
    hits: u32,
    /// The key held down, and how many blocks since it was last heard.
    pressed: Option<char>,
    misses: u8,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfDetector {
    pub fn new() -> Self {
        let mut coeff = [0.0; 8];
        for (c, f) in coeff.iter_mut().zip(ROWS.iter().chain(COLS.iter())) {
            *c = 2.0 * (2.0 * std::f32::consts::PI * f / 8000.0).cos();
        }
        Self {
            coeff,
            s1: [0.0; 8],
            s2: [0.0; 8],
            energy: 0.0,
            first_half: 0.0,
            filled: 0,
            candidate: None,
            hits: 0,
            pressed: None,
            misses: 0,
        }
    }

    /// Feeds consecutive 8 kHz samples; `on_digit` gets each digit released in them.
    pub fn feed(&mut self, mut samples: &[i16], mut on_digit: impl FnMut(Detected)) {
        while !samples.is_empty() {
            // Run up to the next half-block boundary without a branch per sample.
            let boundary = if self.filled < BLOCK / 2 {
                BLOCK / 2
            } else {
                BLOCK
            };
            let n = (boundary - self.filled).min(samples.len());
            let (chunk, rest) = samples.split_at(n);
            samples = rest;
            self.run(chunk);
            self.filled += n;
            if self.filled == BLOCK / 2 {
                self.first_half = self.energy;
            }
            if self.filled == BLOCK {
                let hit = self.block();
                if let Some(d) = self.step(hit) {
                    on_digit(d);
                }
            }
        }
    }

    /// The Goertzel recurrence `s[n] = x[n] + c s[n-1] - s[n-2]` and the energy over `chunk`.
    fn run(&mut self, chunk: &[i16]) {
        let (mut s1, mut s2, c) = (self.s1, self.s2, self.coeff);
        let mut energy = self.energy;
        for &x in chunk {
            let x = x as f32;
            for k in 0..8 {
                let s0 = x + c[k] * s1[k] - s2[k];
                s2[k] = s1[k];
                s1[k] = s0;
            }
            energy += x * x;
        }
        (self.s1, self.s2, self.energy) = (s1, s2, energy);
    }

    /// Ends a block: the digit it holds, if it passes every check.
    fn block(&mut self) -> Option<char> {
        let mut power = [0.0f32; 8];
        for (k, p) in power.iter_mut().enumerate() {
            let (a, b) = (self.s1[k], self.s2[k]);
            *p = a * a + b * b - self.coeff[k] * a * b;
        }
        let energy = self.energy;
        let halves = (self.first_half, energy - self.first_half);
        (self.s1, self.s2) = ([0.0; 8], [0.0; 8]);
        self.energy = 0.0;
        self.filled = 0;

        let (rows, cols) = power.split_at(4);
        let (r, row) = strongest(rows)?;
        let (c, col) = strongest(cols)?;
        // A tone of amplitude A gives (A N / 2)² at its frequency.
        let min = (MIN_AMPLITUDE * BLOCK as f32 / 2.0).powi(2);
        let dominant = |group: &[f32], best: usize, p: f32| {
            group
                .iter()
                .enumerate()
                .all(|(i, &q)| i == best || q <= p * GROUP_MARGIN)
        };
        // 2|X|²/(N E) is a tone's share of the block's energy.
        let share = 2.0 * (row + col) / (BLOCK as f32 * energy);
        (row >= min
            && col >= min
            && col >= row * NORMAL_TWIST
            && row >= col * REVERSE_TWIST
            && dominant(rows, r, row)
            && dominant(cols, c, col)
            && share >= MIN_TONE_SHARE
            && halves.0.min(halves.1) >= halves.0.max(halves.1) * MIN_HALF_BALANCE)
            .then_some(KEYS[r][c])
    }

    /// Advances the key state by one block.
    fn step(&mut self, hit: Option<char>) -> Option<Detected> {
        if let Some(key) = self.pressed {
            if hit == Some(key) {
                self.misses = 0;
                self.hits += 1;
                return None;
            }
            self.misses += 1;
            if self.misses < MISSES_TO_RELEASE {
                return None;
            }
            let held = self.hits;
            (self.pressed, self.misses, self.candidate, self.hits) = (None, 0, None, 0);
            return Some(Detected {
                digit: key,
                duration_ms: held * BLOCK as u32 / 8,
            });
        }
        if hit.is_some() && hit == self.candidate {
            self.hits += 1;
        } else {
            self.candidate = hit;
            self.hits = hit.is_some() as u32;
        }
        if self.hits >= HITS_TO_PRESS as u32 {
            self.pressed = self.candidate;
        }
        None
    }
}

/// Index and power of the strongest of a group, if it has any power.
fn strongest(group: &[f32]) -> Option<(usize, f32)> {
    group
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .filter(|&(_, p)| p > 0.0)
}

/// The row and column frequency of a DTMF digit (for generators and tests).
pub fn frequencies(digit: char) -> Option<(f32, f32)> {
    KEYS.iter().enumerate().find_map(|(r, row)| {
        row.iter()
            .position(|&k| k == digit)
            .map(|c| (ROWS[r], COLS[c]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: f32 = 8000.0;

    fn tone(freqs: &[(f32, f32)], ms: u32, phase0: usize) -> Vec<i16> {
        let n = (ms as f32 * RATE / 1000.0) as usize;
        (0..n)
            .map(|i| {
                let t = (i + phase0) as f32 / RATE;
                let v: f32 = freqs
                    .iter()
                    .map(|&(f, a)| a * (2.0 * std::f32::consts::PI * f * t).sin())
                    .sum();
                v.round().clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    fn key(digit: char, ms: u32, amp: f32) -> Vec<i16> {
        let (r, c) = frequencies(digit).expect("a DTMF digit");
        tone(&[(r, amp), (c, amp)], ms, 0)
    }

    fn silence(ms: u32) -> Vec<i16> {
        vec![0; (ms as f32 * RATE / 1000.0) as usize]
    }

    /// Runs the audio through a fresh detector in 20 ms packets.
    fn detect(audio: &[i16]) -> Vec<Detected> {
        let mut d = DtmfDetector::new();
        let mut out = Vec::new();
        for pkt in audio.chunks(160) {
            d.feed(pkt, |x| out.push(x));
        }
        out
    }

    fn digits(audio: &[i16]) -> String {
        detect(audio).iter().map(|d| d.digit).collect()
    }

    /// Deterministic white noise (a 32-bit LCG), peak `amp`.
    fn noise(ms: u32, amp: f32, seed: u32) -> Vec<i16> {
        let mut x = seed;
        (0..(ms * 8))
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((x >> 16) as f32 / 32768.0 - 1.0) * amp
            })
            .map(|v| v as i16)
            .collect()
    }

    /// A vowel-like sound: harmonics of a gliding pitch, shaped by two formants.
    fn speech(ms: u32, amp: f32) -> Vec<i16> {
        let n = ms as usize * 8;
        let mut phase = 0.0f32;
        (0..n)
            .map(|i| {
                let t = i as f32 / RATE;
                let f0 = 110.0 + 40.0 * (2.0 * std::f32::consts::PI * 1.5 * t).sin();
                phase += 2.0 * std::f32::consts::PI * f0 / RATE;
                let v: f32 = (1..=30)
                    .map(|h| {
                        let f = f0 * h as f32;
                        let formant = |c: f32, w: f32| 1.0 / (1.0 + ((f - c) / w).powi(2));
                        (formant(700.0, 150.0) + 0.6 * formant(1250.0, 200.0) + 0.05)
                            * (phase * h as f32).sin()
                    })
                    .sum();
                (v * amp / 3.0).clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    #[test]
    fn every_digit_at_the_usual_level() {
        for row in KEYS {
            for k in row {
                let mut a = silence(40);
                a.extend(key(k, 100, 8000.0));
                a.extend(silence(100));
                let got = detect(&a);
                assert_eq!(got.len(), 1, "{k}: {got:?}");
                assert_eq!(got[0].digit, k);
                assert!((76..=102).contains(&got[0].duration_ms), "{got:?}");
            }
        }
    }

    #[test]
    fn quiet_digits_and_the_twist_limits() {
        // -30 dBFS per tone still counts; below the threshold it does not.
        let quiet = [key('5', 100, 1000.0), silence(100)].concat();
        assert_eq!(digits(&quiet), "5");
        let too_quiet = [key('5', 100, 300.0), silence(100)].concat();
        assert_eq!(digits(&too_quiet), "");
        // Column 6 dB weaker than the row: accepted; 12 dB: refused. Row 6 dB weaker: refused.
        let twisted = |row_amp: f32, col_amp: f32| {
            [
                tone(&[(770.0, row_amp), (1336.0, col_amp)], 100, 0),
                silence(100),
            ]
            .concat()
        };
        assert_eq!(digits(&twisted(8000.0, 4000.0)), "5");
        assert_eq!(digits(&twisted(8000.0, 2000.0)), "");
        assert_eq!(digits(&twisted(4000.0, 8000.0)), "");
    }

    #[test]
    fn a_number_dialled_key_by_key() {
        let mut a = Vec::new();
        for k in "*48#0123456789ABCD".chars() {
            a.extend(key(k, 70, 6000.0));
            a.extend(silence(50));
        }
        a.extend(silence(100));
        assert_eq!(digits(&a), "*48#0123456789ABCD");
    }

    #[test]
    fn two_presses_of_the_same_key_are_two_digits() {
        let a = [
            key('8', 100, 8000.0),
            silence(60),
            key('8', 100, 8000.0),
            silence(100),
        ]
        .concat();
        assert_eq!(digits(&a), "88");
    }

    #[test]
    fn a_short_dropout_inside_a_press_is_still_one_digit() {
        let a = [
            key('9', 100, 8000.0),
            silence(10),
            key('9', 100, 8000.0),
            silence(100),
        ]
        .concat();
        assert_eq!(digits(&a), "9");
    }

    #[test]
    fn tones_of_40_ms_count_and_blips_of_20_ms_do_not_at_any_alignment() {
        for offset in (0..BLOCK).step_by(7) {
            let lead = vec![0i16; offset];
            let long = [lead.clone(), key('1', 40, 8000.0), silence(100)].concat();
            assert_eq!(digits(&long), "1", "40 ms at offset {offset}");
            let blip = [lead, key('1', 20, 8000.0), silence(100)].concat();
            assert_eq!(digits(&blip), "", "20 ms at offset {offset}");
        }
    }

    #[test]
    fn a_single_tone_never_counts() {
        for f in ROWS.iter().chain(COLS.iter()) {
            let a = [tone(&[(*f, 12000.0)], 500, 0), silence(100)].concat();
            assert_eq!(digits(&a), "", "{f} Hz");
        }
        // The generator's call tones: every multiple of 50 Hz from 300 to 3000 at -6 dBFS.
        for f in (6..=60).map(|k| k as f32 * 50.0) {
            let a = [tone(&[(f, 16384.0)], 500, 0), silence(100)].concat();
            assert_eq!(digits(&a), "", "{f} Hz");
        }
    }

    #[test]
    fn noise_and_speech_do_not_count_but_a_digit_over_them_does() {
        assert_eq!(digits(&noise(3000, 20000.0, 1)), "");
        assert_eq!(digits(&speech(3000, 12000.0)), "");
        let mix = |a: &[i16], b: &[i16]| -> Vec<i16> {
            a.iter().zip(b).map(|(x, y)| x.saturating_add(*y)).collect()
        };
        let mut k = silence(100);
        k.extend(key('#', 100, 8000.0));
        k.extend(silence(300));
        assert_eq!(digits(&mix(&k, &noise(500, 2000.0, 7))), "#");
        assert_eq!(digits(&mix(&k, &speech(500, 1500.0))), "#");
        // Speech as loud as the tones drowns them: refusing is the safe side.
        assert_eq!(digits(&mix(&k, &noise(500, 30000.0, 3))), "");
    }

    #[test]
    fn packet_size_does_not_change_the_result() {
        let a = [
            key('7', 90, 7000.0),
            silence(70),
            key('3', 90, 7000.0),
            silence(100),
        ]
        .concat();
        let mut whole = Vec::new();
        DtmfDetector::new().feed(&a, |d| whole.push(d));
        assert_eq!(detect(&a), whole);
        let mut tiny = Vec::new();
        let mut d = DtmfDetector::new();
        for s in a.chunks(1) {
            d.feed(s, |x| tiny.push(x));
        }
        assert_eq!(tiny, whole);
        assert_eq!(whole.iter().map(|d| d.digit).collect::<String>(), "73");
    }

    proptest::proptest! {
        /// Any audio, cut into any packets: no panic, only DTMF digits, and the same digits
        /// as when fed whole.
        #[test]
        fn any_audio_in_any_packets(
            audio in proptest::collection::vec(proptest::num::i16::ANY, 0..4000),
            cut in 1usize..400,
        ) {
            let mut whole = Vec::new();
            DtmfDetector::new().feed(&audio, |d| whole.push(d));
            let mut parts = Vec::new();
            let mut d = DtmfDetector::new();
            for p in audio.chunks(cut) {
                d.feed(p, |x| parts.push(x));
            }
            proptest::prop_assert_eq!(&parts, &whole);
            proptest::prop_assert!(whole.iter().all(|d| frequencies(d.digit).is_some()));
        }
    }

    #[test]
    fn frequencies_of_every_key() {
        assert_eq!(frequencies('1'), Some((697.0, 1209.0)));
        assert_eq!(frequencies('*'), Some((941.0, 1209.0)));
        assert_eq!(frequencies('D'), Some((941.0, 1633.0)));
        assert_eq!(frequencies('x'), None);
    }
}
