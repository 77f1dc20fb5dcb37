// X.509 for Netwarden's own certificates: ECDSA P-256 keys, a self-signed CA, the serving
// certificates it signs, and PKCS#10 requests. Node's crypto makes keys and parses certificates
// but cannot build or sign one; @peculiar/x509 builds them over Node's WebCrypto, so the signing
// itself is still OpenSSL's.
import 'reflect-metadata'; // @peculiar/x509's dependency injection (tsyringe) needs it loaded first
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import { canonicalIP, type SubjectAltNames, type Validity } from './certinfo.js';

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const OID_SUBJECT_ALT_NAME = '2.5.29.17';

x509.cryptoProvider.set(webcrypto);

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;

export interface KeyPair {
  keys: CryptoKeyPair;
  /** PKCS#8 PEM, as Node's TLS takes it. */
  keyPem: string;
}


export interface CertificateAuthority {
  certPem: string;
  keyPem: string;
}

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
}

/** A new ECDSA P-256 key pair. */
export async function generateKeyPair(): Promise<KeyPair> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { keys, keyPem: toPem('PRIVATE KEY', der) };
}

/** The key pair of a PEM private key (PKCS#8 or SEC1) of curve P-256. */
export async function importKeyPair(keyPem: string): Promise<KeyPair> {
  const privateKey = createPrivateKey(keyPem);
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const keys: CryptoKeyPair = {
    privateKey: await webcrypto.subtle.importKey('pkcs8', pkcs8, EC_P256, true, ['sign']),
    publicKey: await webcrypto.subtle.importKey('spki', spki, EC_P256, true, ['verify']),
  };
  return { keys, keyPem: toPem('PRIVATE KEY', pkcs8) };
}

/** A new key and a certificate for it signed by itself, with the extensions made for that key. */
async function selfSigned(commonName: string, validity: Validity, extensions: (key: KeyPair) => Promise<x509.Extension[]>): Promise<IssuedCertificate> {
  const key = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: nameOf(commonName),
    ...validity,
    keys: key.keys,
    signingAlgorithm: EC_P256,
    extensions: await extensions(key),
  });
  return { certPem: cert.toString('pem'), keyPem: key.keyPem };
}

/** A self-signed CA that may sign end-entity certificates only (path length 0). */
export function createCertificateAuthority(commonName: string, validity: Validity): Promise<CertificateAuthority> {
  return selfSigned(commonName, validity, async (key) => [
    new x509.BasicConstraintsExtension(true, 0, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(key.keys.publicKey),
  ]);
}

/**
 * A self-signed server-auth certificate with no names a client could check: what a metrics port
 * serves until the process has its real certificate (scrapers then skip verification, as the
 * kubelet's probes always do).
 */
export function createSelfSignedServing(commonName: string, validity: Validity): Promise<IssuedCertificate> {
  return selfSigned(commonName, validity, async () => [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
  ]);
}

/** A server-auth certificate for `publicKey`, valid for exactly these names, signed by the CA. */
export async function signServingCertificate(
  ca: CertificateAuthority,
  request: { commonName: string; publicKey: CryptoKey | x509.PublicKey; sans: SubjectAltNames } & Validity,
): Promise<string> {
  const caKey = await importKeyPair(ca.keyPem);
  const caCert = new x509.X509Certificate(ca.certPem);
  const cert = await x509.X509CertificateGenerator.create({
    subject: nameOf(request.commonName),
    issuer: caCert.subjectName,
    notBefore: request.notBefore,
    notAfter: request.notAfter,
    publicKey: request.publicKey,
    signingKey: caKey.keys.privateKey,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([...request.sans.ips.map((value) => ({ type: 'ip' as const, value })), ...request.sans.dns.map((value) => ({ type: 'dns' as const, value }))]),
      await x509.AuthorityKeyIdentifierExtension.create(caKey.keys.publicKey),
    ],
  });
  return cert.toString('pem');
}

/** A new key and a serving certificate for it (the controller's own, signed by its CA). */
export async function issueServingCertificate(ca: CertificateAuthority, request: { commonName: string; sans: SubjectAltNames } & Validity): Promise<IssuedCertificate> {
  const key = await generateKeyPair();
  const certPem = await signServingCertificate(ca, { ...request, publicKey: key.keys.publicKey });
  return { certPem, keyPem: key.keyPem };
}

/** A PKCS#10 request for these names, signed by the key (which proves the requester holds it). */
export async function createCertificateRequest(key: KeyPair, commonName: string, sans: SubjectAltNames): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: nameOf(commonName),
    keys: key.keys,
    signingAlgorithm: EC_P256,
    extensions: [new x509.SubjectAlternativeNameExtension([...sans.ips.map((value) => ({ type: 'ip' as const, value })), ...sans.dns.map((value) => ({ type: 'dns' as const, value }))])],
  });
  return csr.toString('pem');
}

export interface ParsedCertificateRequest {
  commonName: string | undefined;
  /** IP addresses in canonical text form. */
  ips: string[];
  dns: string[];
  /** SAN entries of any other type (email, URI, ...), as "type:value". */
  otherNames: string[];
  /** OIDs of requested extensions other than the SAN. */
  otherExtensions: string[];
  /** e.g. "ECDSA P-256", "RSA 2048". */
  keyAlgorithm: string;
  signatureValid: boolean;
  publicKey: x509.PublicKey;
}

/** Reads a PEM PKCS#10 request; throws on anything that is not one. */
export async function parseCertificateRequest(pem: string): Promise<ParsedCertificateRequest> {
  const csr = new x509.Pkcs10CertificateRequest(pem);
  const ips: string[] = [];
  const dns: string[] = [];
  const otherNames: string[] = [];
  for (const ext of [...csr.extensions].filter((e) => e.type === OID_SUBJECT_ALT_NAME)) {
    for (const name of new x509.SubjectAlternativeNameExtension(ext.rawData).names.items) {
      if (name.type === 'ip') ips.push(canonicalIP(name.value));
      else if (name.type === 'dns') dns.push(name.value);
      else otherNames.push(`${name.type}:${name.value}`);
    }
  }
  const cn = csr.subjectName.getField('CN');
  const algorithm = csr.publicKey.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  return {
    commonName: cn.length === 1 ? cn[0] : undefined,
    ips,
    dns,
    otherNames,
    otherExtensions: [...csr.extensions].map((e) => e.type).filter((t) => t !== OID_SUBJECT_ALT_NAME),
    keyAlgorithm: [algorithm.name, algorithm.namedCurve ?? algorithm.modulusLength].filter((p) => p !== undefined).join(' '),
    signatureValid: await csr.verify(),
    publicKey: csr.publicKey,
  };
}

function nameOf(commonName: string): x509.Name {
  return new x509.Name([{ CN: [commonName] }]);
}

function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
