// keystored-keyring.mjs - a keyring for the AWS Encryption SDK for JavaScript
// (@aws-crypto/client-node 5.x) that wraps and unwraps data keys through keystored's keyring
// routes, so that the application never holds a branch key. Its EDKs are those of AWS's
// hierarchical keyring (KmsHierarchicalKeyRingNode with utf8Sorting: true) over the same key store:
// either keyring decrypts what the other encrypted. README "Envelope encryption without handling
// branch keys" shows the same calls with curl; this file is the pattern for any language.
//
//   import { buildClient, CommitmentPolicy } from '@aws-crypto/client-node';
//   import { KeystoredKeyringNode } from './examples/keystored-keyring.mjs';
//   const keyring = new KeystoredKeyringNode({
//     endpoint: 'http://127.0.0.1:8080', keyStore: 'default', token: process.env.KS_TOKEN,
//     branchKeyIdentifier: 'my-branch-key',
//   });
//   const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
//   const { result } = await encrypt(keyring, 'hello', { encryptionContext: { tenant: 'acme' } });
//   const { plaintext } = await decrypt(keyring, result);
//
// What such a keyring must do (the SDK checks some of it):
//   - import everything from @aws-crypto/client-node, so that there is one copy of the materials
//     classes (a second copy of @aws-crypto/material-management fails the SDK's instanceof checks);
//   - send material.encryptionContext as it is: it is the whole context the SDK binds (for the
//     signing suites, e.g. the default 0x0578, it includes aws-crypto-public-key);
//   - send each EDK's provider info as raw bytes (edk.rawInfo when the SDK kept them);
//   - pass data keys to the SDK as fresh Uint8Arrays (the SDK zeroes them when done);
//   - set the keyring trace flags: generated, encrypted, decrypted data key.

import {
  EncryptedDataKey, KeyringNode, KeyringTraceFlag,
} from '@aws-crypto/client-node';

const PROVIDER_ID = 'aws-kms-hierarchy';

const b64 = (bytes) => Buffer.from(bytes).toString('base64');
// A fresh Uint8Array (not a Buffer slice of a pool): the SDK zeroes and keeps it.
const bytesOf = (text) => new Uint8Array(Buffer.from(text, 'base64'));
const suiteIdText = (suite) => `0x${suite.id.toString(16).padStart(4, '0')}`;
// The SDK may hold a data key as a Node.js KeyObject (AwsEsdkKeyObject); its bytes are what
// keystored wraps.
const keyBytes = (k) => (k instanceof Uint8Array ? k : k.export());

export class KeystoredError extends Error {
  constructor(status, type, message) {
    super(`keystored ${status} ${type}: ${message}`);
    this.name = type || 'KeystoredError';
    this.status = status;
  }
}

export class KeystoredKeyringNode extends KeyringNode {
  // endpoint: keystored's base URL; keyStore: the {ks} of the routes; token: a bearer token of a
  // tenant with the keyring, reader or admin role; branchKeyIdentifier: the key to wrap with (and
  // the only one tried on unwrap).
  constructor({ endpoint, keyStore, token, branchKeyIdentifier, fetch: fetchImpl = fetch }) {
    super();
    if (!endpoint || !keyStore || !token || !branchKeyIdentifier)
      throw new Error('endpoint, keyStore, token and branchKeyIdentifier are required');
    this.endpoint = endpoint.replace(/\/$/, '');
    this.keyStore = keyStore;
    this.branchKeyIdentifier = branchKeyIdentifier;
    this._token = token;
    this._fetch = fetchImpl;
    Object.freeze(this);
  }

  async _post(route, body) {
    const r = await this._fetch(`${this.endpoint}/v1/keystores/${encodeURIComponent(this.keyStore)}/keyring/${route}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${this._token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = await r.json().catch(() => ({}));
    if (r.status !== 200)
      throw new KeystoredError(r.status, json.error && json.error.type, json.error && json.error.message);
    return json;
  }

  async _onEncrypt(material) {
    const body = {
      branchKeyIdentifier: this.branchKeyIdentifier,
      encryptionContext: { ...material.encryptionContext },
      algorithmSuiteId: suiteIdText(material.suite),
    };
    // A data key made by an earlier keyring (a multi-keyring's generator) is wrapped as it is.
    if (material.hasUnencryptedDataKey) body.dataKey = b64(keyBytes(material.getUnencryptedDataKey()));
    const r = await this._post('wrap', body);
    const trace = { keyNamespace: PROVIDER_ID, keyName: this.branchKeyIdentifier };
    if (!material.hasUnencryptedDataKey) {
      material.setUnencryptedDataKey(bytesOf(r.dataKey), {
        ...trace, flags: KeyringTraceFlag.WRAPPING_KEY_GENERATED_DATA_KEY,
      });
    }
    const edk = new EncryptedDataKey({
      providerId: r.encryptedDataKey.providerId,
      providerInfo: r.branchKeyIdentifier,
      rawInfo: bytesOf(r.encryptedDataKey.providerInfo),
      encryptedDataKey: bytesOf(r.encryptedDataKey.ciphertext),
    });
    return material.addEncryptedDataKey(edk, KeyringTraceFlag.WRAPPING_KEY_ENCRYPTED_DATA_KEY);
  }

  async _onDecrypt(material, encryptedDataKeys) {
    // keystored skips other providers' EDKs itself; they are sent so that the index it answers
    // is the message's.
    const r = await this._post('unwrap', {
      encryptedDataKeys: encryptedDataKeys.map((edk) => ({
        providerId: edk.providerId,
        providerInfo: b64(edk.rawInfo || Buffer.from(edk.providerInfo, 'utf8')),
        ciphertext: b64(edk.encryptedDataKey),
      })),
      encryptionContext: { ...material.encryptionContext },
      algorithmSuiteId: suiteIdText(material.suite),
      branchKeyIdentifier: this.branchKeyIdentifier,
    });
    return material.setUnencryptedDataKey(bytesOf(r.dataKey), {
      keyNamespace: PROVIDER_ID,
      keyName: r.branchKeyIdentifier,
      flags: KeyringTraceFlag.WRAPPING_KEY_DECRYPTED_DATA_KEY,
    });
  }
}
