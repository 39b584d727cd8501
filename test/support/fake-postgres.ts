// A loopback server that speaks just enough of the PostgreSQL wire protocol (trust auth, simple queries) to fail
// the way a real server does: silent like a frozen postmaster, refusing at startup, answering a query with an
// error (optionally FATAL, then closing), never answering a query, or dropping the connection. pg itself then
// produces its real errors against it.
import { createServer, type Server, type Socket } from 'node:net';

export type Behaviour =
  | { kind: 'silent' } // accepts the TCP connection, never answers (a frozen postmaster)
  | { kind: 'refuse'; code: string; message: string } // FATAL at startup (too many clients, shutting down)
  | { kind: 'query-error'; code: string; message: string; fatal?: boolean } // answers the query with an error
  | { kind: 'hang-query' } // completes startup, never answers a query (a frozen backend)
  | { kind: 'drop-on-query' }; // closes the socket when a query arrives

/** A loopback server speaking the start of the PostgreSQL protocol (trust auth, simple queries). */
export class FakePostgres {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  behaviour: Behaviour = { kind: 'silent' };
  port = 0;
  /** The parameters of the last startup message (user, database, statement_timeout, ...). */
  lastStartup: Record<string, string> = {};

  async start(): Promise<void> {
    this.server = createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const behaviour = this.behaviour;
    let started = false;
    let buffer = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (!started) {
          if (buffer.length < 4) return;
          const len = buffer.readInt32BE(0);
          if (buffer.length < len) return;
          this.lastStartup = startupParameters(buffer.subarray(8, len));
          buffer = buffer.subarray(len);
          started = true;
          this.startup(socket, behaviour);
          continue;
        }
        if (buffer.length < 5) return;
        const type = String.fromCharCode(buffer[0]!);
        const len = buffer.readInt32BE(1);
        if (buffer.length < 1 + len) return;
        buffer = buffer.subarray(1 + len);
        if (type === 'Q') this.query(socket, behaviour);
        if (type === 'X') socket.end();
      }
    });
  }

  private startup(socket: Socket, b: Behaviour): void {
    if (b.kind === 'silent') return;
    if (b.kind === 'refuse') {
      socket.write(errorResponse('FATAL', b.code, b.message));
      socket.end();
      return;
    }
    socket.write(Buffer.concat([message('R', int32(0)), message('Z', Buffer.from('I'))]));
  }

  private query(socket: Socket, b: Behaviour): void {
    if (b.kind === 'hang-query') return;
    if (b.kind === 'drop-on-query') {
      socket.destroy();
      return;
    }
    if (b.kind === 'query-error') {
      socket.write(errorResponse(b.fatal ? 'FATAL' : 'ERROR', b.code, b.message));
      if (b.fatal) socket.end();
      else socket.write(message('Z', Buffer.from('I')));
    }
  }
}

function startupParameters(body: Buffer): Record<string, string> {
  const parts = body.toString('utf8').split('\0');
  const params: Record<string, string> = {};
  for (let i = 0; i + 1 < parts.length && parts[i]; i += 2) params[parts[i]!] = parts[i + 1]!;
  return params;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

function message(type: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(type), int32(body.length + 4), body]);
}

function errorResponse(severity: string, code: string, text: string): Buffer {
  const field = (t: string, v: string) => Buffer.concat([Buffer.from(t), Buffer.from(v), Buffer.from([0])]);
  return message('E', Buffer.concat([field('S', severity), field('V', severity), field('C', code), field('M', text), Buffer.from([0])]));
}
