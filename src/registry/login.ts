/** `darch login` / `darch logout`: check credentials against the registry, then record or forget them. */
import { type AuthFileOptions, removeCredentials, saveCredentials } from './auth-file.js';
import { type ConnectSettings, connectFor } from './remote.js';

export async function login(host: string, username: string, password: string, s: ConnectSettings): Promise<{ file: string; authRequired: boolean }> {
  const client = await connectFor(host, { ...s, credentials: { username, password } });
  try {
    await client.checkLogin();
  } finally {
    await client.close();
  }
  const file = await saveCredentials(host, username, password, { authFile: s.authFile });
  return { file, authRequired: true };
}

export async function logout(host: string, opts: AuthFileOptions): Promise<{ removed: boolean; file: string }> {
  return removeCredentials(host, opts);
}

/** host[:port] from what people type: a URL, a reference, or a bare host. */
export function registryHost(input: string): string {
  return input.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
}
