#!/usr/bin/env node
// A loopback SMTP sink for scripts/bench, on Nodemailer's smtp-server (npm).
//
//     node smtp_sink.js --cert CERT --key KEY [--user U --password P]
//
// The same contract as bench/smtp_sink.py (aiosmtpd): STARTTLS offered, AUTH only
// after it when --user is given, each accepted message only increments a counter.
// Prints "READY <port>", serves until stdin closes, then prints
// "RECEIVED <messages> CONNECTIONS <tcp connections>" and exits.
//
// Why a second sink: aiosmtpd spends about 0.3 ms of Python per message, which caps
// a pooled client near 3,000 msgs/s on this machine whatever the client does. The
// SMTP pooling figure is meant to measure the client (a connection and TLS handshake
// saved per message), so the bench runs it against both servers and prints both.
'use strict';

const fs = require('fs');
const { SMTPServer } = require('smtp-server');
const { SMTPConnection } = require('smtp-server/lib/smtp-connection.js');

// smtp-server greets only after a fixed 100 ms pause, to catch clients that talk
// before the greeting (like Postfix's postscreen). That pause would dominate the
// one-connection-per-message run and flatter pooling, so the sink greets at once,
// as aiosmtpd does. Everything else is the library's own code.
SMTPConnection.prototype.init = function init() {
  this._setListeners(() => this.connectionReady());
};

function arg(name) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const cert = arg('cert');
const key = arg('key');
const user = arg('user');
const password = arg('password');
let messages = 0;
let connections = 0;

const server = new SMTPServer({
  name: 'dunning-bench-smtp',
  secure: false,
  key: key ? fs.readFileSync(key) : undefined,
  cert: cert ? fs.readFileSync(cert) : undefined,
  hideSTARTTLS: !cert,
  authOptional: !user,
  allowInsecureAuth: false,
  authMethods: ['PLAIN', 'LOGIN'],
  disableReverseLookup: true,
  logger: false,
  size: 10 * 1024 * 1024,
  socketTimeout: 60 * 1000,
  onConnect(session, callback) {
    connections += 1;
    callback();
  },
  onAuth(auth, session, callback) {
    if (auth.username === user && auth.password === password) {
      callback(null, { user: auth.username });
    } else {
      callback(new Error('Invalid username or password'));
    }
  },
  onData(stream, session, callback) {
    stream.on('data', () => {});
    stream.on('end', () => {
      messages += 1;
      callback(null, 'Ok: queued as BENCH' + messages);
    });
  },
});

server.on('error', (err) => {
  process.stderr.write('smtp_sink.js: ' + err.message + '\n');
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write('READY ' + server.server.address().port + '\n');
});

process.stdin.resume();
process.stdin.on('end', () => {
  process.stdout.write('RECEIVED ' + messages + ' CONNECTIONS ' + connections + '\n');
  process.exit(0);
});
