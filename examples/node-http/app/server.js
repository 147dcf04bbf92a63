// A small Node.js service on Debian's nodejs: a static page, a JSON API that computes
// something (the SHA-256 of a name, a sum), and a gzip-compressed payload. Only node's
// standard library; listens on 127.0.0.1:PORT (argv[2], default 3000).
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

const port = Number(process.argv[2] || 3000);
const page = fs.readFileSync(path.join(__dirname, 'index.html'));

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    return res.end(page);
  }
  if (url.pathname === '/api/hash') {
    const name = url.searchParams.get('name') || 'world';
    return json(res, 200, { name, sha256: crypto.createHash('sha256').update(name).digest('hex') });
  }
  if (url.pathname === '/api/sum') {
    const nums = url.searchParams.getAll('n').map(Number);
    if (nums.some((n) => !Number.isFinite(n))) return json(res, 400, { error: 'n must be numbers' });
    return json(res, 200, { n: nums, sum: nums.reduce((a, b) => a + b, 0) });
  }
  if (url.pathname === '/api/gzip') {
    // compressed and decompressed again: the answer proves zlib works in the image
    const text = 'aim '.repeat(64);
    const packed = zlib.gzipSync(Buffer.from(text), { level: 9 });
    return json(res, 200, { bytes: text.length, gzipped: packed.length, roundTrip: zlib.gunzipSync(packed).toString() === text });
  }
  json(res, 404, { error: 'not found', path: url.pathname });
});

server.listen(port, '127.0.0.1', () => console.log(`node-http listening on 127.0.0.1:${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
