//! Mutations of valid files: byte-level edits aimed at headers (lengths, counts, offsets and
//! type tags are where readers go wrong) and structure-aware edits of JSON values (numbers made
//! extreme, types swapped, arrays cut or grown, keys dropped).

use serde_json::Value;

/// splitmix64: small, fast, and every input is reproducible from (seed, target, index).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Integers that sit on the edges readers get wrong.
pub const EDGES: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    31,
    32,
    33,
    64,
    255,
    256,
    4095,
    4096,
    65_535,
    65_536,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1_000_000_000,
    1 << 40,
    i64::MAX as u64,
    1 << 63,
    u64::MAX,
];

/// 1 to 4 byte-level edits of `input`; `focus` (a header's byte range) gets most of them.
pub fn bytes(rng: &mut Rng, input: &[u8], focus: std::ops::Range<usize>) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len().max(1);
        let at = if rng.below(10) < 8 && focus.end > focus.start {
            focus.start + rng.below(focus.end - focus.start)
        } else {
            rng.below(len)
        }
        .min(out.len());
        match rng.below(8) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => out[at] = *rng.pick(&[0u8, 1, 0x7f, 0x80, 0xff, 0x1b, b'\n']),
            2 => overwrite(&mut out, at, &(*rng.pick(EDGES) as u32).to_le_bytes()),
            3 => overwrite(&mut out, at, &rng.pick(EDGES).to_le_bytes()),
            4 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            5 => {
                let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                out.splice(at..at, junk);
            }
            6 if !out.is_empty() => {
                let from = rng.below(out.len());
                let end = (from + 1 + rng.below(64)).min(out.len());
                let chunk = out[from..end].to_vec();
                out.splice(at..at, chunk);
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn overwrite(out: &mut [u8], at: usize, value: &[u8]) {
    let end = (at + value.len()).min(out.len());
    out[at..end].copy_from_slice(&value[..end - at]);
}

/// 1 to 3 structure-aware edits of a JSON value.
pub fn json(rng: &mut Rng, input: &Value) -> Value {
    let mut out = input.clone();
    for _ in 0..1 + rng.below(3) {
        let mut paths = Vec::new();
        collect_paths(&out, String::new(), &mut paths);
        let path = rng.pick(&paths).clone();
        if let Some(node) = out.pointer_mut(&path) {
            *node = mutate_node(rng, node);
        }
    }
    out
}

fn collect_paths(v: &Value, here: String, out: &mut Vec<String>) {
    out.push(here.clone());
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, x)| collect_paths(x, format!("{here}/{i}"), out)),
        Value::Object(map) => map.iter().for_each(|(k, x)| {
            let key = k.replace('~', "~0").replace('/', "~1");
            collect_paths(x, format!("{here}/{key}"), out)
        }),
        _ => {}
    }
}

/// A replacement for `node`: an extreme value of its type, or another type altogether.
fn mutate_node(rng: &mut Rng, node: &Value) -> Value {
    let extreme_number = |rng: &mut Rng| -> Value {
        match rng.below(9) {
            0 => Value::from(*rng.pick(EDGES)),
            1 => Value::from(-(rng.below(3) as i64) - 1),
            2 => serde_json::json!(1e308),
            3 => serde_json::json!(-1e308),
            4 => serde_json::json!(1e-310),
            5 => serde_json::json!(0.5),
            6 => serde_json::json!(-0.0),
            7 => Value::from(rng.next() as i64),
            _ => Value::from(0),
        }
    };
    match (node, rng.below(4)) {
        (Value::Number(_), 0..=2) => extreme_number(rng),
        (Value::String(_), 0) => Value::from(""),
        (Value::String(s), 1) => Value::from(s.repeat(1 + rng.below(50))),
        (Value::String(s), 2) => {
            let mut chars: Vec<char> = s.chars().collect();
            let at = rng.below(chars.len() + 1);
            chars.insert(
                at,
                *rng.pick(&['\u{0}', '\u{1b}', '{', '}', '%', '\n', 'é', '😀']),
            );
            Value::from(chars.into_iter().collect::<String>())
        }
        (Value::Array(items), 0) => {
            let keep = rng.below(items.len() + 1);
            Value::from(items[..keep].to_vec())
        }
        (Value::Array(items), 1) if !items.is_empty() => {
            let mut items = items.clone();
            let copy = items[rng.below(items.len())].clone();
            items.insert(rng.below(items.len() + 1), copy);
            Value::from(items)
        }
        (Value::Object(map), 0 | 1) if !map.is_empty() => {
            let mut map = map.clone();
            let key = map
                .keys()
                .nth(rng.below(map.len()))
                .cloned()
                .unwrap_or_default();
            map.remove(&key);
            Value::Object(map)
        }
        (Value::Bool(b), 0) => Value::from(!b),
        _ => match rng.below(6) {
            0 => Value::Null,
            1 => extreme_number(rng),
            2 => Value::from("x"),
            3 => serde_json::json!([]),
            4 => serde_json::json!({}),
            _ => Value::Bool(rng.below(2) == 0),
        },
    }
}
