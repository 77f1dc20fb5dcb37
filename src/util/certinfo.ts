// Reading certificates with Node's own crypto: validity, names, bundles. No signing here (see
// x509.ts), so whoever only verifies or inspects certificates does not load an X.509 builder.
import { X509Certificate } from 'node:crypto';
import net from 'node:net';

export interface SubjectAltNames {
  ips: string[];
  dns: string[];
}

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/** NotBefore and NotAfter of the first certificate of a PEM text. */
export function certificateValidity(pem: string): Validity {
  const cert = new X509Certificate(pem);
  return { notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}

/** IP and DNS names of the first certificate of a PEM text. */
export function certificateNames(pem: string): SubjectAltNames {
  const ips: string[] = [];
  const dns: string[] = [];
  for (const entry of (new X509Certificate(pem).subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('IP Address:')) ips.push(canonicalIP(entry.slice('IP Address:'.length)));
    else if (entry.startsWith('DNS:')) dns.push(entry.slice('DNS:'.length));
  }
  return { ips, dns };
}

/** The subject CN of the first certificate of a PEM text. */
export function certificateCommonName(pem: string): string | undefined {
  return /(?:^|\n)CN=([^\n]*)/.exec(new X509Certificate(pem).subject)?.[1];
}

/** The certificates of a PEM bundle, each as its own PEM block. */
export function splitPemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)?.map((block) => `${block}\n`) ?? [];
}

/** One text form per address ("::1" for "0:0:...:1"), so addresses compare as strings. */
export function canonicalIP(address: string): string {
  if (!net.isIPv6(address)) return address;
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}
