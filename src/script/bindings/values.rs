//! Rhai's own functions that allocate by a count (`blob(n)`, `pad`), registered again over
//! Rhai's with the same behaviour, so that a huge count is refused against the heap budget
//! before anything is allocated (huelab sets none of Rhai's size limits, which were what
//! stopped them before; see `crate::heap`). Growth by steps (`push`, `+=`) needs no
//! replacement: the engine checks the budget at every operation.
use rhai::plugin::*;
use rhai::Dynamic;

/// The names these functions take from Rhai's standard library (`huelab api` lists huelab's
/// own functions, not these).
pub const REPLACED_BUILTINS: &[&str] = &["blob", "pad"];

#[export_module]
pub mod values_api {
    use rhai::{Array, Blob, Dynamic, ImmutableString};

    use super::bytes_of;
    use crate::script::errors::{to_rhai, RhaiResult};

    /// A BLOB of `len` zero bytes (empty for `len` ≤ 0).
    #[rhai_fn(name = "blob", return_raw)]
    pub fn blob_of_zeros(len: i64) -> RhaiResult<Blob> {
        blob_filled(len, 0)
    }

    /// A BLOB of `len` copies of the low 8 bits of `value` (empty for `len` ≤ 0).
    #[rhai_fn(name = "blob", return_raw)]
    pub fn blob_filled(len: i64, value: i64) -> RhaiResult<Blob> {
        let len = usize::try_from(len).unwrap_or(0);
        crate::heap::check_growth("blob", len).map_err(to_rhai)?;
        Ok(vec![(value & 0xff) as u8; len])
    }

    /// Pads the array with copies of `item` up to `len` items (nothing if it is that long).
    #[rhai_fn(name = "pad", return_raw)]
    pub fn pad_array(array: &mut Array, len: i64, item: Dynamic) -> RhaiResult<()> {
        let Some(added) = usize::try_from(len).ok().and_then(|len| len.checked_sub(array.len())).filter(|&n| n > 0) else {
            return Ok(());
        };
        crate::heap::check_growth("pad", added.saturating_mul(bytes_of(&item))).map_err(to_rhai)?;
        array.resize(array.len() + added, item);
        Ok(())
    }

    /// Pads the BLOB with the low 8 bits of `value` up to `len` bytes.
    #[rhai_fn(name = "pad", return_raw)]
    pub fn pad_blob(blob: &mut Blob, len: i64, value: i64) -> RhaiResult<()> {
        let Some(added) = usize::try_from(len).ok().and_then(|len| len.checked_sub(blob.len())).filter(|&n| n > 0) else {
            return Ok(());
        };
        crate::heap::check_growth("pad", added).map_err(to_rhai)?;
        blob.resize(blob.len() + added, (value & 0xff) as u8);
        Ok(())
    }

    /// Pads the string with `character` up to `len` characters.
    #[rhai_fn(name = "pad", return_raw)]
    pub fn pad_string(string: &mut ImmutableString, len: i64, character: char) -> RhaiResult<()> {
        pad_string_with(string, len, character.encode_utf8(&mut [0; 4]))
    }

    /// Pads the string with repeats of `padding` up to `len` characters (the last repeat cut
    /// short where it would pass `len`).
    #[rhai_fn(name = "pad", return_raw)]
    pub fn pad_string_with(string: &mut ImmutableString, len: i64, padding: &str) -> RhaiResult<()> {
        let have = string.chars().count();
        let Some(added) = usize::try_from(len).ok().and_then(|len| len.checked_sub(have)).filter(|&n| n > 0) else {
            return Ok(());
        };
        let widest = padding.chars().map(char::len_utf8).max().unwrap_or(0);
        if widest == 0 {
            return Ok(());
        }
        crate::heap::check_growth("pad", added.saturating_mul(widest)).map_err(to_rhai)?;
        let text = string.make_mut();
        text.extend(padding.chars().cycle().take(added));
        Ok(())
    }
}

/// About what one more copy of `value` costs on the heap: its slot plus everything nested.
fn bytes_of(value: &Dynamic) -> usize {
    let slot = std::mem::size_of::<Dynamic>();
    if let Some(array) = value.read_lock::<rhai::Array>() {
        return slot + array.iter().map(bytes_of).sum::<usize>();
    }
    if let Some(map) = value.read_lock::<rhai::Map>() {
        return slot + map.iter().map(|(key, v)| key.len() + bytes_of(v)).sum::<usize>();
    }
    if let Some(blob) = value.read_lock::<rhai::Blob>() {
        return slot + blob.len();
    }
    // Anything else fits in its slot; copies of a string share one buffer.
    slot
}
