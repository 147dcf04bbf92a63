#!/usr/bin/env node
// A PXE client's DHCP DISCOVER, sent by the tests from inside a network namespace (run with
// `ip netns exec NS node dhcp-probe.mjs OPTIONS`): broadcasts one DISCOVER with the options a
// PXE ROM or iPXE sends (vendor class PXEClient with the architecture, option 93, the client
// GUID, and for iPXE the user class "iPXE" and option 175), collects every OFFER for a while and
// prints them as JSON. With --request, it then asks the proxyDHCP server for the boot file on
// port 4011 as a PXE client does after it has an address (ciaddr from the plain DHCP server's
// offer, or one the caller put on the interface: --address), choosing the boot menu's first item
// when the offer has a menu (BIOS).
// Each request is sent again every second, as clients do (a DHCP server that pings an address
// before offering it answers only a later DISCOVER). --until N ends the wait once N servers have
// offered (the site's and aim's: 2); --settle MS ends it MS after an offer of an address, as a PXE
// client waits that long for proxyDHCP offers once it has one: a silent proxyDHCP server costs MS
// after the site answered (at once, or after the ping check of a new address), at most --wait-ms.
//   --mac 52:54:00:aa:bb:cc --arch 0|7|9 [--ipxe] [--uuid UUID] [--wait-ms 3000] [--until N] [--settle MS]
//   [--request --address 198.18.x.y]
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? def : args[i + 1];
};
const flag = (name) => args.includes(`--${name}`);
const mac = Buffer.from(opt('mac', '52:54:00:aa:bb:cc').split(':').map((h) => parseInt(h, 16)));
const arch = Number(opt('arch', '0'));
const ipxe = flag('ipxe');
const uuid = Buffer.from(opt('uuid', '00112233-4455-6677-8899-aabbccddeeff').replace(/-/g, ''), 'hex');
const waitMs = Number(opt('wait-ms', '3000'));
const until = Number(opt('until', '0'));
const settleMs = Number(opt('settle', '0'));
const xid = randomBytes(4);

function packet(type, ciaddr = '0.0.0.0', bootItem) {
  const head = Buffer.alloc(236);
  head[0] = 1; // BOOTREQUEST
  head[1] = 1; // ethernet
  head[2] = 6;
  xid.copy(head, 4);
  head.writeUInt16BE(0x8000, 10); // broadcast replies
  Buffer.from(ciaddr.split('.').map(Number)).copy(head, 12);
  mac.copy(head, 28);
  const o = [];
  const add = (code, value) => o.push(Buffer.from([code, value.length]), value);
  add(53, Buffer.from([type]));
  add(55, Buffer.from([1, 3, 6, 43, 60, 66, 67, 93, 97, 128, 129, 130, 131, 132, 133, 134, 135, 175]));
  add(57, Buffer.from([0x05, 0xc0])); // max message 1472
  const archText = String(arch).padStart(5, '0');
  add(60, Buffer.from(`PXEClient:Arch:${archText}:UNDI:002001`));
  const archBuf = Buffer.alloc(2);
  archBuf.writeUInt16BE(arch);
  add(93, archBuf);
  add(94, Buffer.from([1, 2, 1]));
  add(97, Buffer.concat([Buffer.from([0]), uuid]));
  // PXE boot server discovery: the menu item chosen (type, layer 0), as a BIOS PXE ROM asks for it
  if (bootItem !== undefined) add(43, Buffer.concat([Buffer.from([71, 4]), bootItem, Buffer.from([0, 0, 255])]));
  if (ipxe) {
    add(77, Buffer.from('iPXE'));
    add(175, Buffer.from([19, 1, 1])); // an iPXE feature (HTTP)
  }
  o.push(Buffer.from([255]));
  return Buffer.concat([head, Buffer.from([99, 130, 83, 99]), ...o]);
}

function cstring(b) {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('latin1');
}

function parse(msg, from) {
  if (msg.length < 240 || msg[0] !== 2 || !msg.subarray(4, 8).equals(xid)) return undefined;
  const ip = (at) => [...msg.subarray(at, at + 4)].join('.');
  const options = {};
  let pxe;
  for (let at = 240; at < msg.length; ) {
    const code = msg[at];
    if (code === 255) break;
    if (code === 0) {
      at++;
      continue;
    }
    const len = msg[at + 1];
    const value = msg.subarray(at + 2, at + 2 + len);
    options[code] = value;
    at += 2 + len;
  }
  if (options[43]) {
    pxe = {};
    const v = options[43];
    for (let at = 0; at < v.length; ) {
      const code = v[at];
      if (code === 255) break;
      const len = v[at + 1];
      pxe[code] = v.subarray(at + 2, at + 2 + len).toString('hex');
      at += 2 + len;
    }
  }
  return {
    from: `${from.address}:${from.port}`,
    type: options[53]?.[0],
    yiaddr: ip(16),
    siaddr: ip(20),
    serverId: options[54] ? [...options[54]].join('.') : undefined,
    file: cstring(msg.subarray(108, 236)) || undefined,
    sname: cstring(msg.subarray(44, 108)) || undefined,
    bootfile: options[67] ? cstring(options[67]) : undefined,
    vendorClass: options[60]?.toString('latin1'),
    pxe,
  };
}

/**
 * Sends `send()` now and every second; waits up to waitMs, or until done() holds after an answer,
 * or (with --settle) settleMs after the first answer for which settles(answer) holds.
 */
function collect(send, done, settles = () => false) {
  let timer;
  let settled;
  let wake;
  const over = new Promise((resolve) => {
    wake = resolve;
    timer = setTimeout(resolve, waitMs);
  });
  send();
  const again = setInterval(send, 1000);
  const check = (answer) => {
    if (done()) return wake();
    if (settleMs > 0 && settled === undefined && settles(answer)) settled = setTimeout(wake, settleMs);
  };
  return { check, over: over.then(() => (clearTimeout(timer), clearTimeout(settled), clearInterval(again))) };
}

const offers = [];
const sock = createSocket({ type: 'udp4', reuseAddr: true });
await new Promise((resolve) => sock.bind(68, '0.0.0.0', resolve));
sock.setBroadcast(true);
const discovery = collect(
  () => sock.send(packet(1), 67, '255.255.255.255'),
  () => until > 0 && new Set(offers.map((o) => o.from)).size >= until,
  (offer) => offer !== undefined && offer.yiaddr !== '0.0.0.0',
);
sock.on('message', (msg, from) => {
  const p = parse(msg, from);
  // a server answers every DISCOVER sent again: one offer per server
  if (p && !offers.some((o) => o.from === p.from)) offers.push(p);
  discovery.check(p);
});
await discovery.over;
const result = { xid: xid.toString('hex'), offers };
if (flag('request')) {
  const proxy = offers.find((o) => o.vendorClass?.startsWith('PXEClient') && o.yiaddr === '0.0.0.0');
  result.ack = [];
  if (proxy?.serverId) {
    const s4011 = createSocket('udp4');
    await new Promise((resolve) => s4011.bind(0, opt('address', '0.0.0.0'), resolve));
    // with a boot menu (BIOS), ask for its first item as the ROM would
    const item = proxy.pxe?.[9] ? Buffer.from(proxy.pxe[9].slice(0, 4), 'hex') : undefined;
    const answered = collect(
      () => s4011.send(packet(3, opt('address', '0.0.0.0'), item), 4011, proxy.serverId),
      () => result.ack.length > 0,
    );
    s4011.on('message', (msg, from) => {
      const p = parse(msg, from);
      if (p && result.ack.length === 0) result.ack.push(p);
      answered.check(p);
    });
    await answered.over;
    s4011.close();
  }
}
sock.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
