//! Jupyter's wire protocol (messaging 5.5): the frames of a message, HMAC-SHA256 signatures,
//! and replies that point back at their request. Contents stay JSON values: each handler reads
//! the fields it needs and answers a missing one with an error reply.
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

pub const PROTOCOL_VERSION: &str = "5.5";
const DELIMITER: &[u8] = b"<IDS|MSG>";

/// A message's header (also the parent header of its replies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub msg_id: String,
    pub session: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub date: String,
    pub msg_type: String,
    #[serde(default)]
    pub version: String,
}

/// One message: the routing identities it came with, its header, its parent's, and content.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub identities: Vec<Bytes>,
    pub header: Header,
    /// `{}` for a message that answers nothing.
    pub parent_header: Value,
    pub metadata: Value,
    pub content: Value,
}

/// Why frames were not a message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("no <IDS|MSG> delimiter")]
    NoDelimiter,
    #[error("{0} frames after the delimiter, at least 5 needed")]
    TooFewFrames(usize),
    #[error("bad signature")]
    BadSignature,
    #[error("the {0} is not valid JSON of its kind: {1}")]
    BadJson(&'static str, String),
    /// Signed, with a readable header, but another part is not JSON: `request` (its routing
    /// and header, the rest `{}`) is enough to answer it with an error.
    #[error("the {part} is not valid JSON: {problem}")]
    Unreadable { part: &'static str, problem: String, request: Box<Message> },
}

/// Signs and checks messages with the connection file's key (no key: unsigned, as Jupyter
/// allows for local testing).
#[derive(Clone)]
pub struct Signer {
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        write!(f, "Signer {{ signed: {} }}", self.key.is_some())
    }
}

impl Signer {
    pub fn new(key: &str) -> Self {
        Signer { key: (!key.is_empty()).then(|| key.as_bytes().to_vec()) }
    }

    fn mac(&self, parts: &[&[u8]]) -> Option<Hmac<Sha256>> {
        let key = self.key.as_ref()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        for part in parts {
            mac.update(part);
        }
        Some(mac)
    }

    /// The hex signature of header, parent header, metadata and content ("" when unsigned).
    pub fn sign(&self, parts: &[&[u8]]) -> String {
        self.mac(parts).map_or(String::new(), |mac| mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Whether `signature` (hex) signs `parts`, compared in constant time.
    pub fn verify(&self, signature: &[u8], parts: &[&[u8]]) -> bool {
        match self.mac(parts) {
            None => true,
            Some(mac) => decode_hex(signature).is_some_and(|bytes| mac.verify_slice(&bytes).is_ok()),
        }
    }
}

fn decode_hex(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    text.chunks(2).map(|pair| std::str::from_utf8(pair).ok().and_then(|s| u8::from_str_radix(s, 16).ok())).collect()
}

impl Message {
    /// Parses the frames of one message, checking its signature before reading any JSON.
    pub fn from_frames(frames: Vec<Bytes>, signer: &Signer) -> Result<Self, WireError> {
        let split = frames.iter().position(|f| f.as_ref() == DELIMITER).ok_or(WireError::NoDelimiter)?;
        let rest = &frames[split + 1..];
        if rest.len() < 5 {
            return Err(WireError::TooFewFrames(rest.len()));
        }
        let parts: Vec<&[u8]> = rest[1..5].iter().map(|b| b.as_ref()).collect();
        if !signer.verify(&rest[0], &parts) {
            return Err(WireError::BadSignature);
        }
        let header: Header = serde_json::from_slice(parts[0]).map_err(|e| WireError::BadJson("header", e.to_string()))?;
        let identities = frames[..split].to_vec();
        let read = |part: &'static str, bytes: &[u8]| serde_json::from_slice::<Value>(bytes).map_err(|e| (part, e.to_string()));
        let rest = (|| Ok((read("parent header", parts[1])?, read("metadata", parts[2])?, read("content", parts[3])?)))();
        match rest {
            Ok((parent_header, metadata, content)) => Ok(Message { identities, header, parent_header, metadata, content }),
            Err((part, problem)) => {
                let request = Box::new(Message { identities, header, parent_header: json!({}), metadata: json!({}), content: json!({}) });
                Err(WireError::Unreadable { part, problem, request })
            }
        }
    }

    /// The frames to send, signed.
    pub fn to_frames(&self, signer: &Signer) -> Vec<Bytes> {
        let header = serde_json::to_vec(&self.header).expect("a header serialises");
        let parts = [header, self.parent_header.to_string().into_bytes(), self.metadata.to_string().into_bytes(), self.content.to_string().into_bytes()];
        let signature = signer.sign(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let mut frames = self.identities.clone();
        frames.push(Bytes::from_static(DELIMITER));
        frames.push(Bytes::from(signature.into_bytes()));
        frames.extend(parts.into_iter().map(Bytes::from));
        frames
    }

    /// A new message of `msg_type` in `session`, answering `parent` (routed back to its sender).
    pub fn reply_to(parent: &Message, msg_type: &str, content: Value) -> Self {
        let mut message = Message::new(&parent.header.session, msg_type, content);
        message.identities = parent.identities.clone();
        message.parent_header = serde_json::to_value(&parent.header).expect("a header serialises");
        message
    }

    /// A new message of `msg_type` that answers nothing.
    pub fn new(session: &str, msg_type: &str, content: Value) -> Self {
        Message {
            identities: vec![],
            header: Header { msg_id: new_id(), session: session.to_owned(), username: "huelab".into(), date: now_iso8601(), msg_type: msg_type.to_owned(), version: PROTOCOL_VERSION.into() },
            parent_header: json!({}),
            metadata: json!({}),
            content,
        }
    }

    /// A string field of the content.
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.content.get(name).and_then(Value::as_str)
    }
}

/// A random UUID (version 4) as Jupyter writes message ids.
pub fn new_id() -> String {
    let bits: u128 = rand::random();
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// The current UTC time as ISO 8601 with microseconds.
pub fn now_iso8601() -> String {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (days, seconds) = ((since.as_secs() / 86_400) as i64, since.as_secs() % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z", seconds / 3600, seconds / 60 % 60, seconds % 60, since.subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_message_round_trips_and_a_changed_byte_fails_its_signature() {
        let signer = Signer::new("secret");
        let mut message = Message::new("s1", "execute_request", json!({ "code": "1 + 1" }));
        message.identities = vec![Bytes::from_static(b"peer")];
        let frames = message.to_frames(&signer);
        assert_eq!(Message::from_frames(frames.clone(), &signer).unwrap(), message);
        let mut tampered = frames.clone();
        let last = tampered.len() - 1;
        tampered[last] = Bytes::from(message.content.to_string().replace("1 + 1", "1 + 2").into_bytes());
        assert_eq!(Message::from_frames(tampered, &signer), Err(WireError::BadSignature));
        assert_eq!(Message::from_frames(frames, &Signer::new("other")), Err(WireError::BadSignature));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_four_parts() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let signer = Signer::new("Jefe");
        assert_eq!(signer.sign(&[b"what do ya want ", b"for nothing?"]), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn broken_frames_are_errors() {
        let signer = Signer::new("");
        assert_eq!(Message::from_frames(vec![Bytes::from_static(b"x")], &signer), Err(WireError::NoDelimiter));
        let short = vec![Bytes::from_static(DELIMITER), Bytes::new(), Bytes::from_static(b"{}")];
        assert_eq!(Message::from_frames(short, &signer), Err(WireError::TooFewFrames(2)));
        let bad_header = vec![Bytes::from_static(DELIMITER), Bytes::new(), Bytes::from_static(b"{"), Bytes::from_static(b"{}"), Bytes::from_static(b"{}"), Bytes::from_static(b"{}")];
        assert!(matches!(Message::from_frames(bad_header, &signer), Err(WireError::BadJson("header", _))));
        let mut sent = Message::new("s", "execute_request", json!({}));
        sent.identities = vec![Bytes::from_static(b"peer")];
        let mut frames = sent.to_frames(&signer);
        let last = frames.len() - 1;
        frames[last] = Bytes::from_static(b"{not json");
        match Message::from_frames(frames, &signer) {
            Err(WireError::Unreadable { part: "content", request, .. }) => assert_eq!((request.identities, request.header), (sent.identities, sent.header)),
            other => panic!("{other:?}"),
        }
    }

    /// Seeded mutations of real messages (bit flips, truncations, dropped, repeated and
    /// emptied frames): every one is read or refused, none panics, and whatever is read has
    /// exactly the signed parts that were sent.
    #[test]
    fn mutated_frames_are_refused_or_read_unchanged_never_a_panic() {
        use rand::{Rng, SeedableRng};
        let signer = Signer::new("fuzz-key");
        let mut message = Message::new("s", "execute_request", json!({ "code": "let x = [1, 2];\nx.len()", "silent": false }));
        message.identities = vec![Bytes::from_static(b"peer-1")];
        let original = message.to_frames(&signer);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(19);
        let mut refused = 0;
        for _ in 0..3000 {
            let mut frames: Vec<Vec<u8>> = original.iter().map(|f| f.to_vec()).collect();
            let i = rng.random_range(0..frames.len());
            match rng.random_range(0..5) {
                0 if !frames[i].is_empty() => {
                    let at = rng.random_range(0..frames[i].len());
                    frames[i][at] ^= 1 << rng.random_range(0..8);
                }
                1 => {
                    let keep = rng.random_range(0..=frames[i].len());
                    frames[i].truncate(keep);
                }
                2 => {
                    frames.remove(i);
                }
                3 => {
                    let copy = frames[i].clone();
                    frames.insert(i, copy);
                }
                _ => frames[i].clear(),
            }
            match Message::from_frames(frames.into_iter().map(Bytes::from).collect(), &signer) {
                Ok(read) => {
                    assert_eq!((&read.header, &read.parent_header, &read.metadata, &read.content), (&message.header, &message.parent_header, &message.metadata, &message.content));
                }
                Err(_) => refused += 1,
            }
        }
        assert!(refused > 1500, "only {refused} of 3000 mutations were refused");
    }

    #[test]
    fn ids_are_version_4_uuids_and_dates_are_iso_8601() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        let date = now_iso8601();
        assert!(date.len() == 27 && date.ends_with('Z') && date.as_bytes()[10] == b'T', "{date}");
        assert!(date.starts_with("20"), "{date}");
    }
}
