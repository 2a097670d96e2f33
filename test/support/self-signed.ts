/**
 * A self-signed X.509 certificate made in code with node:crypto, for TLS tests on machines without an
 * `openssl` binary: an ECDSA P-256 key pair, and a version 3 certificate for `localhost`, 127.0.0.1 and ::1
 * whose DER encoding is assembled here and signed with the key. Node has no API that writes certificates,
 * but it signs, exports keys as SubjectPublicKeyInfo, and parses the result (`X509Certificate`) to check it.
 */
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';

/** A key and certificate in PEM, ready for `tls.createServer({ key, cert })` and a client's `ca`. */
export interface TlsMaterial {
  key: string;
  cert: string;
}

// ----------------------------------------------------------------- DER, only the parts a certificate needs

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>>= 8) bytes.unshift(v & 0xff);
  return Buffer.of(0x80 | bytes.length, ...bytes);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.of(tag), length(body.length), body]);
}

const sequence = (...items: Buffer[]): Buffer => tlv(0x30, ...items);
const set = (...items: Buffer[]): Buffer => tlv(0x31, ...items);
/** A context-specific constructed tag, [n] EXPLICIT. */
const explicit = (n: number, item: Buffer): Buffer => tlv(0xa0 | n, item);

function integer(value: Buffer): Buffer {
  let bytes = value;
  while (bytes.length > 1 && bytes[0] === 0 && (bytes[1]! & 0x80) === 0) bytes = bytes.subarray(1);
  if ((bytes[0]! & 0x80) !== 0) bytes = Buffer.concat([Buffer.of(0), bytes]); // stays positive
  return tlv(0x02, bytes);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes: number[] = [40 * parts[0]! + parts[1]!];
  for (const part of parts.slice(2)) {
    const groups: number[] = [];
    let v = part;
    do {
      groups.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < groups.length - 1; i++) groups[i]! |= 0x80;
    bytes.push(...groups);
  }
  return tlv(0x06, Buffer.from(bytes));
}

const utf8String = (text: string): Buffer => tlv(0x0c, Buffer.from(text, 'utf8'));
const octetString = (bytes: Buffer): Buffer => tlv(0x04, bytes);
const boolean = (value: boolean): Buffer => tlv(0x01, Buffer.of(value ? 0xff : 0));

function bitString(bytes: Buffer): Buffer {
  return tlv(0x03, Buffer.of(0), bytes); // no unused bits
}

/** UTCTime (years 1950 to 2049), as RFC 5280 requires for those years. */
function utcTime(date: Date): Buffer {
  const two = (n: number): string => String(n).padStart(2, '0');
  const text =
    `${two(date.getUTCFullYear() % 100)}${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}` +
    `${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  return tlv(0x17, Buffer.from(text, 'ascii'));
}

function name(commonName: string): Buffer {
  return sequence(set(sequence(oid('2.5.4.3'), utf8String(commonName))));
}

function ipBytes(address: string): Buffer {
  if (address.includes(':')) {
    // only the forms used here: '::1'
    if (address !== '::1') throw new Error(`unsupported IPv6 literal ${address}`);
    const bytes = Buffer.alloc(16);
    bytes[15] = 1;
    return bytes;
  }
  return Buffer.from(address.split('.').map(Number));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(oid(id), boolean(true), octetString(value)) : sequence(oid(id), octetString(value));
}

const PEM_LINE = /.{1,64}/g;

function pem(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').match(PEM_LINE)!.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * Makes a fresh key pair and a self-signed certificate, valid from a day ago for `days` days, for the DNS
 * name `commonName` and the loopback addresses.
 */
export function selfSignedCertificate(commonName = 'localhost', days = 2): TlsMaterial {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ecdsaWithSha256 = sequence(oid('1.2.840.10045.4.3.2'));
  const now = Date.now();
  const notBefore = new Date(now - 24 * 3600 * 1000);
  const notAfter = new Date(now + days * 24 * 3600 * 1000);
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  const subjectAltName = sequence(
    tlv(0x82, Buffer.from(commonName, 'ascii')), // dNSName [2]
    tlv(0x87, ipBytes('127.0.0.1')), // iPAddress [7]
    tlv(0x87, ipBytes('::1')),
  );
  const extensions = explicit(
    3,
    sequence(
      extension('2.5.29.19', true, sequence(boolean(true))), // basicConstraints: CA, so it can anchor its own chain
      extension('2.5.29.15', true, tlv(0x03, Buffer.of(2, 0x84))), // keyUsage: digitalSignature, keyCertSign (2 unused bits)
      extension('2.5.29.17', false, subjectAltName),
    ),
  );
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const tbs = sequence(
    explicit(0, integer(Buffer.of(2))), // version 3
    integer(serial),
    ecdsaWithSha256,
    name(commonName),
    sequence(utcTime(notBefore), utcTime(notAfter)),
    name(commonName),
    spki,
    extensions,
  );
  const signature = sign('sha256', tbs, privateKey); // DER-encoded ECDSA-Sig-Value
  const certificate = sequence(tbs, ecdsaWithSha256, bitString(signature));
  return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: pem('CERTIFICATE', certificate) };
}
