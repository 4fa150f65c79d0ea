//! Classic pcap output (microsecond timestamps, Ethernet link type).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

use crate::Frame;

pub fn write_pcap(path: &Path, frames: &[Frame]) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: 65535,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
    };
    let mut w =
        PcapWriter::with_header(BufWriter::new(file), header).context("writing pcap header")?;
    for f in frames {
        let ts = Duration::from_micros(f.ts_ns / 1_000);
        w.write_packet(&PcapPacket::new(ts, f.data.len() as u32, &f.data))
            .context("writing pcap packet")?;
    }
    let mut inner = w.into_writer();
    std::io::Write::flush(&mut inner).context("flushing pcap")?;
    Ok(())
}
