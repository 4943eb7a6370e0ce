// The reference: the same transfers with the official AWS SDK for JavaScript v3
// (@aws-sdk/client-s3): ranged GETs / multipart parts of the same size, N in flight over a
// keep-alive agent limited to N sockets. Prints one line in s3_bench's format.
'use strict';
const path = require('path');
const http = require('http');
const nodeModules = path.join(__dirname, '..', '..', 'tools', 'node', 'node_modules');
const s3 = require(path.join(nodeModules, '@aws-sdk', 'client-s3'));
const { NodeHttpHandler } = require(path.join(nodeModules, '@smithy', 'node-http-handler'));

function parseArgs(argv) {
  const args = { size: 1 << 30, partSize: 8 << 20, connections: 16 };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--endpoint') args.endpoint = next();
    else if (a === '--bucket') args.bucket = next();
    else if (a === '--key') args.key = next();
    else if (a === '--op') args.op = next();
    else if (a === '--connections') args.connections = Number(next());
    else if (a === '--part-size') args.partSize = Number(next());
    else if (a === '--size') args.size = Number(next());
    else throw new Error('unknown argument ' + a);
  }
  if (!args.endpoint || !args.bucket || !args.key || !['upload', 'download'].includes(args.op)) {
    throw new Error('usage: sdk_bench.js --endpoint URL --bucket B --key K --op upload|download --connections N');
  }
  return args;
}

async function runPool(count, width, fn) {
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, count) }, worker));
}

async function download(client, args) {
  const head = await client.send(new s3.HeadObjectCommand({ Bucket: args.bucket, Key: args.key }));
  const size = Number(head.ContentLength);
  const buf = Buffer.allocUnsafe(size);
  const parts = Math.ceil(size / args.partSize);
  await runPool(parts, args.connections, async i => {
    const start = i * args.partSize;
    const end = Math.min(size, start + args.partSize) - 1;
    const out = await client.send(
      new s3.GetObjectCommand({ Bucket: args.bucket, Key: args.key, Range: `bytes=${start}-${end}` }));
    let off = start;
    for await (const chunk of out.Body) {
      chunk.copy(buf, off);
      off += chunk.length;
    }
    if (off !== end + 1) throw new Error(`short part ${i}: ${off - start} bytes`);
  });
  return size;
}

async function upload(client, args) {
  const buf = Buffer.alloc(args.size);
  for (let i = 0; i < buf.length; i += 4096) buf[i] = (i / 4096 * 31 + 7) & 0xff;
  const created = await client.send(new s3.CreateMultipartUploadCommand({ Bucket: args.bucket, Key: args.key }));
  const parts = Math.ceil(args.size / args.partSize);
  const etags = new Array(parts);
  await runPool(parts, args.connections, async i => {
    const start = i * args.partSize;
    const body = buf.subarray(start, Math.min(args.size, start + args.partSize));
    const out = await client.send(new s3.UploadPartCommand({
      Bucket: args.bucket, Key: args.key, UploadId: created.UploadId, PartNumber: i + 1, Body: body,
    }));
    etags[i] = out.ETag;
  });
  await client.send(new s3.CompleteMultipartUploadCommand({
    Bucket: args.bucket, Key: args.key, UploadId: created.UploadId,
    MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
  }));
  return args.size;
}

async function main() {
  const args = parseArgs(process.argv);
  const agent = new http.Agent({ keepAlive: true, maxSockets: args.connections });
  const client = new s3.S3Client({
    endpoint: args.endpoint,
    region: process.env.AWS_REGION || 'us-east-1',
    forcePathStyle: true,
    credentials: {
      accessKeyId: process.env.AWS_ACCESS_KEY_ID || 'S3RVER',
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || 'S3RVER',
    },
    requestHandler: new NodeHttpHandler({ httpAgent: agent }),
  });
  const t0 = process.hrtime.bigint();
  const bytes = args.op === 'upload' ? await upload(client, args) : await download(client, args);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`sdk ${args.op} conns=${args.connections} bytes=${bytes} seconds=${seconds.toFixed(3)} ` +
              `MiBps=${(bytes / 1048576 / seconds).toFixed(1)}`);
  agent.destroy();
}

main().catch(err => {
  console.error('sdk_bench:', err && err.stack || err);
  process.exit(1);
});
