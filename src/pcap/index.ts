export { CaptureReader, CaptureFormatError, LinkType, readCapture, readCaptureStream, pcapFileHeader, pcapRecord, type CapturedPacket } from './reader.js';
export { describePacket, formatIpv4Option, formatIpv4Options, formatTimestamp, summarizePacket } from './decode.js';
export { writeSummary } from './summary.js';
