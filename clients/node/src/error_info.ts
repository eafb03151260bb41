// The google.rpc.ErrorInfo the server attaches to its errors (domain "podium", reason a value of
// the ErrorReason enum without its prefix). Decoded by hand from the status details: the
// google.rpc protos are not among the generated stubs, and only three fields are needed.
import { ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

const ERROR_INFO = "google.rpc.ErrorInfo";

export interface ErrorInfo {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

/** The error's ErrorInfo, or undefined when it carries none. */
export function errorInfo(error: ConnectError): ErrorInfo | undefined {
  for (const detail of error.details) {
    if ("type" in detail && detail.type === ERROR_INFO) return decode(detail.value);
  }
  return undefined;
}

function decode(bytes: Uint8Array): ErrorInfo {
  const info: ErrorInfo = { reason: "", domain: "", metadata: {} };
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) info.reason = reader.string();
    else if (field === 2 && wireType === WireType.LengthDelimited) info.domain = reader.string();
    else if (field === 3 && wireType === WireType.LengthDelimited) {
      const [key, value] = mapEntry(new BinaryReader(reader.bytes()));
      info.metadata[key] = value;
    } else reader.skip(wireType, field);
  }
  return info;
}

function mapEntry(reader: BinaryReader): [string, string] {
  let key = "";
  let value = "";
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) key = reader.string();
    else if (field === 2 && wireType === WireType.LengthDelimited) value = reader.string();
    else reader.skip(wireType, field);
  }
  return [key, value];
}
