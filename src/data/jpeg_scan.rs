//! Whether a baseline JPEG's scan holds every block its header announces. Decoders (zune-jpeg
//! in strict mode too, libjpeg with a warning only) fill a scan that ends early, at a real or a
//! fake end marker, with zeros and return a picture whose lower part is invented; the image
//! then trains and predicts as if it were whole. This walks the entropy-coded data with the
//! file's own Huffman tables, counting blocks, without decoding pixels.
//!
//! Covered: sequential Huffman JPEGs (SOF0, SOF1) whose first scan holds every component (what
//! cameras, PIL and libjpeg write by default). Progressive and multi-scan files are left to the
//! decoder.

/// A Huffman table as canonical codes: for each code length, the first code, the number of
/// codes and where their symbols start.
#[derive(Clone, Default)]
struct Huffman {
    first_code: [u32; 17],
    count: [u32; 17],
    offset: [usize; 17],
    symbols: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8], symbols: &[u8]) -> Huffman {
        let mut table = Huffman { symbols: symbols.to_vec(), ..Default::default() };
        let (mut code, mut offset) = (0u32, 0usize);
        for length in 1..=16 {
            table.first_code[length] = code;
            table.count[length] = u32::from(counts[length - 1]);
            table.offset[length] = offset;
            code = (code + table.count[length]) << 1;
            offset += counts[length - 1] as usize;
        }
        table
    }
}

struct Bits<'a> {
    data: &'a [u8],
    at: usize,
    buffer: u32,
    held: u32,
}

/// The scan ended (a marker, or the end of the file) before a block was complete.
struct Ended;

impl Bits<'_> {
    fn bit(&mut self) -> Result<u32, Ended> {
        if self.held == 0 {
            let byte = *self.data.get(self.at).ok_or(Ended)?;
            if byte == 0xFF {
                // 0xFF 0x00 is a stuffed 0xFF; anything else is a marker.
                if self.data.get(self.at + 1) != Some(&0x00) {
                    return Err(Ended);
                }
                self.at += 1;
            }
            self.at += 1;
            self.buffer = u32::from(byte);
            self.held = 8;
        }
        self.held -= 1;
        Ok((self.buffer >> self.held) & 1)
    }

    fn bits(&mut self, n: u32) -> Result<(), Ended> {
        for _ in 0..n {
            self.bit()?;
        }
        Ok(())
    }

    fn symbol(&mut self, table: &Huffman) -> Result<Option<u8>, Ended> {
        let mut code = 0u32;
        for length in 1..=16 {
            code = (code << 1) | self.bit()?;
            let first = table.first_code[length];
            if code >= first && code - first < table.count[length] {
                return Ok(table.symbols.get(table.offset[length] + (code - first) as usize).copied());
            }
        }
        Ok(None)
    }

    /// Drops the bits left of the current byte (before a restart marker).
    fn align(&mut self) {
        self.held = 0;
    }
}

/// `Err(message)` when a sequential JPEG's first scan ends before its last block; `Ok` when it
/// is complete or the file is of a kind this does not cover.
pub(super) fn check_complete(bytes: &[u8]) -> Result<(), String> {
    let mut dc: [Huffman; 4] = Default::default();
    let mut ac: [Huffman; 4] = Default::default();
    let mut frame: Option<(u32, u32, Vec<(u8, u32, u32)>)> = None;
    let mut restart_interval = 0u32;
    let mut at = 2;
    let read_u16 = |at: usize| -> Option<usize> { Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]) as usize) };
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return Ok(());
        }
        let marker = bytes[at + 1];
        let Some(length) = read_u16(at + 2) else { return Ok(()) };
        let segment = bytes.get(at + 4..at + 2 + length).unwrap_or(&[]);
        match marker {
            0xC4 => {
                let mut p = 0;
                while p + 17 <= segment.len() {
                    let (class, id) = (segment[p] >> 4, (segment[p] & 15) as usize);
                    let counts = &segment[p + 1..p + 17];
                    let total: usize = counts.iter().map(|&c| c as usize).sum();
                    let symbols = segment.get(p + 17..p + 17 + total).unwrap_or(&[]);
                    let table = Huffman::new(counts, symbols);
                    match (class, id) {
                        (0, 0..=3) => dc[id] = table,
                        (1, 0..=3) => ac[id] = table,
                        _ => return Ok(()),
                    }
                    p += 17 + total;
                }
            }
            0xC0 | 0xC1 => {
                if segment.len() < 6 {
                    return Ok(());
                }
                let (height, width) = (u16::from_be_bytes([segment[1], segment[2]]) as u32, u16::from_be_bytes([segment[3], segment[4]]) as u32);
                let components = (0..segment[5] as usize)
                    .filter_map(|c| segment.get(6 + 3 * c..9 + 3 * c))
                    .map(|c| (c[0], u32::from(c[1] >> 4).max(1), u32::from(c[1] & 15).max(1)))
                    .collect();
                frame = Some((width, height, components));
            }
            // Progressive, lossless, arithmetic-coded: not covered.
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return Ok(()),
            0xDD if segment.len() >= 2 => restart_interval = u16::from_be_bytes([segment[0], segment[1]]) as u32,
            0xDA => {
                let Some((width, height, components)) = frame else { return Ok(()) };
                let scan: Vec<(u8, usize, usize)> = (0..*segment.first().unwrap_or(&0) as usize)
                    .filter_map(|c| segment.get(1 + 2 * c..3 + 2 * c))
                    .map(|c| (c[0], (c[1] >> 4) as usize & 3, (c[1] & 15) as usize & 3))
                    .collect();
                if scan.len() != components.len() || components.is_empty() {
                    return Ok(());
                }
                return walk(&bytes[at + 2 + length..], width, height, &components, &scan, &dc, &ac, restart_interval);
            }
            _ => {}
        }
        at += 2 + length;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn walk(data: &[u8], width: u32, height: u32, components: &[(u8, u32, u32)], scan: &[(u8, usize, usize)], dc: &[Huffman; 4], ac: &[Huffman; 4], restart_interval: u32) -> Result<(), String> {
    let (h_max, v_max) = components.iter().fold((1, 1), |(h, v), c| (h.max(c.1), v.max(c.2)));
    // One component: its blocks in raster order; several: interleaved MCUs.
    let (mcus, blocks_per_mcu): (u64, Vec<(usize, u32)>) = if components.len() == 1 {
        (u64::from(width.div_ceil(8)) * u64::from(height.div_ceil(8)), vec![(0, 1)])
    } else {
        let per = scan.iter().enumerate().map(|(i, s)| (i, components.iter().find(|c| c.0 == s.0).map_or(1, |c| c.1 * c.2))).collect();
        (u64::from(width.div_ceil(8 * h_max)) * u64::from(height.div_ceil(8 * v_max)), per)
    };
    let mut bits = Bits { data, at: 0, buffer: 0, held: 0 };
    let ended = |done: u64| format!("the scan ends after {done} of its {mcus} blocks/MCUs (a truncated file, or data cut behind an end marker)");
    for mcu in 0..mcus {
        if restart_interval > 0 && mcu > 0 && mcu % u64::from(restart_interval) == 0 {
            bits.align();
            match (bits.data.get(bits.at), bits.data.get(bits.at + 1)) {
                (Some(0xFF), Some(0xD0..=0xD7)) => bits.at += 2,
                _ => return Err(ended(mcu)),
            }
        }
        for &(component, count) in &blocks_per_mcu {
            let (_, dc_table, ac_table) = scan[component];
            for _ in 0..count {
                let block = (|| -> Result<bool, Ended> {
                    let Some(size) = bits.symbol(&dc[dc_table])? else { return Ok(false) };
                    bits.bits(u32::from(size))?;
                    let mut k = 1;
                    while k < 64 {
                        let Some(rs) = bits.symbol(&ac[ac_table])? else { return Ok(false) };
                        let (run, size) = (rs >> 4, rs & 15);
                        if size == 0 {
                            if run != 15 {
                                break;
                            }
                            k += 16;
                        } else {
                            k += run as usize;
                            bits.bits(u32::from(size))?;
                            k += 1;
                        }
                    }
                    Ok(true)
                })();
                match block {
                    Ok(true) => {}
                    // A code its tables do not have: the decoder reports that itself.
                    Ok(false) => return Ok(()),
                    Err(Ended) => return Err(ended(mcu)),
                }
            }
        }
    }
    Ok(())
}
