#!/usr/bin/env node
/*
 * front.js - a SigV4-verifying reverse proxy in front of s3rver (dev/test only).
 *
 * s3rver accepts any signature as long as the access key id exists, so tests
 * that talk to it directly cannot catch a signing bug. This front recomputes
 * every request's AWS Signature Version 4 with AWS's own signer
 * (@smithy/signature-v4) from what it received on the wire:
 *   - the method and the raw (already URI-encoded) path, used as-is (S3 does not double-encode),
 *   - the query string, decoded and re-canonicalised (sorted, RFC 3986) exactly as S3 does,
 *   - only the headers listed in SignedHeaders, with the values received,
 *   - x-amz-content-sha256 as the payload hash (required, and required to be signed),
 *   - the date from x-amz-date, and the scope's region/service/date.
 * Any mismatch answers 403 with an S3-style XML error, before a single body byte
 * reaches s3rver. A request that passes has its body (any size) streamed to a
 * spool file while it is hashed; a hash different from x-amz-content-sha256
 * answers 400 XAmzContentSHA256Mismatch and nothing reaches s3rver, as with S3.
 * Then the spooled body is streamed to s3rver and the answer streamed back.
 *
 * Not supported (answered with an error, never waved through): presigned URLs,
 * aws-chunked streaming signatures, requests without x-amz-date.
 *
 * With --tls-listen PORT --tls-cert PEM --tls-key PEM it also serves the same
 * front over HTTPS (Node's own TLS, certificate chain as given), so the
 * client's certificate verification can be tested against a private CA.
 * Both listeners live in this one process: stopping its PID stops both.
 *
 * Usage: node front.js --listen PORT --upstream PORT [--host 127.0.0.1]
 *                      [--region us-east-1] [--access-key S3RVER] [--secret-key S3RVER]
 *                      [--max-skew-seconds 900] [--spool-dir DIR]
 *                      [--tls-listen PORT --tls-cert FILE --tls-key FILE]
 */
'use strict';

const http = require('http');
const https = require('https');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { pipeline, Transform } = require('stream');
const { SignatureV4 } = require('@smithy/signature-v4');
const { Hash } = require('@smithy/hash-node');

function parseArgs(argv) {
	const o = {
		host: '127.0.0.1',
		listen: 0,
		upstream: 0,
		region: 'us-east-1',
		accessKey: 'S3RVER',
		secretKey: 'S3RVER',
		maxSkew: 900,
		spoolDir: os.tmpdir(),
		tlsListen: 0,
		tlsCert: '',
		tlsKey: '',
	};
	for (let i = 2; i < argv.length; i += 2) {
		const k = argv[i];
		const v = argv[i + 1];
		if (v === undefined)
			throw new Error(`missing value for ${k}`);
		switch (k) {
		case '--host': o.host = v; break;
		case '--listen': o.listen = Number(v); break;
		case '--upstream': o.upstream = Number(v); break;
		case '--region': o.region = v; break;
		case '--access-key': o.accessKey = v; break;
		case '--secret-key': o.secretKey = v; break;
		case '--max-skew-seconds': o.maxSkew = Number(v); break;
		case '--spool-dir': o.spoolDir = v; break;
		case '--tls-listen': o.tlsListen = Number(v); break;
		case '--tls-cert': o.tlsCert = v; break;
		case '--tls-key': o.tlsKey = v; break;
		default: throw new Error(`unknown option ${k}`);
		}
	}
	if (!o.listen || !o.upstream)
		throw new Error('--listen and --upstream are required');
	if (o.tlsListen && (!o.tlsCert || !o.tlsKey))
		throw new Error('--tls-listen needs --tls-cert and --tls-key');
	return o;
}

const opt = parseArgs(process.argv);
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function xmlEscape(s) {
	return String(s).replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' }[c]));
}

function sendError(req, res, status, code, message) {
	const rid = crypto.randomBytes(8).toString('hex').toUpperCase();
	const body = '<?xml version="1.0" encoding="UTF-8"?>\n' +
		`<Error><Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message>` +
		`<Resource>${xmlEscape((req.url || '').split('?')[0])}</Resource><RequestId>${rid}</RequestId></Error>\n`;
	if (res.headersSent) {
		res.destroy();
		return;
	}
	/* The client may still be sending a body we will not read: close after answering. */
	res.writeHead(status, {
		'content-type': 'application/xml',
		'content-length': Buffer.byteLength(body),
		'x-amz-request-id': rid,
		connection: 'close',
	});
	res.end(req.method === 'HEAD' ? undefined : body);
	log(req, status, code);
}

function log(req, status, note) {
	process.stdout.write(`${new Date().toISOString()} ${req.method} ${(req.url || '').split('?')[0]} ${status}${note ? ' ' + note : ''}\n`);
}

/* Decode one query component strictly (no '+' as space: S3 SigV4 does not do that). */
function qdecode(s) {
	return decodeURIComponent(s);
}

function parseQuery(raw) {
	const query = {};
	if (!raw)
		return query;
	for (const part of raw.split('&')) {
		if (part === '')
			continue;
		const eq = part.indexOf('=');
		const k = qdecode(eq < 0 ? part : part.slice(0, eq));
		const v = eq < 0 ? '' : qdecode(part.slice(eq + 1));
		if (k in query)
			query[k] = [].concat(query[k], v);
		else
			query[k] = v;
	}
	return query;
}

/* "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/s3/aws4_request, SignedHeaders=a;b, Signature=hex" */
function parseAuthorization(h) {
	const m = /^AWS4-HMAC-SHA256\s+(.*)$/.exec(h);
	if (!m)
		return null;
	const fields = {};
	for (const part of m[1].split(',')) {
		const p = part.trim();
		const eq = p.indexOf('=');
		if (eq <= 0)
			return null;
		fields[p.slice(0, eq)] = p.slice(eq + 1);
	}
	if (!fields.Credential || !fields.SignedHeaders || !fields.Signature)
		return null;
	const cred = fields.Credential.split('/');
	if (cred.length !== 5 || cred[4] !== 'aws4_request')
		return null;
	return {
		accessKey: cred[0],
		date: cred[1],
		region: cred[2],
		service: cred[3],
		signedHeaders: fields.SignedHeaders.split(';'),
		signature: fields.Signature,
	};
}

/* x-amz-date is ISO 8601 basic: 20250101T000000Z */
function parseAmzDate(s) {
	const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
	if (!m)
		return null;
	return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

/* Returns null when the signature verifies, else [status, code, message]. */
async function verify(req) {
	const authz = req.headers.authorization;
	const rawUrl = req.url || '/';
	const qpos = rawUrl.indexOf('?');
	const path = qpos < 0 ? rawUrl : rawUrl.slice(0, qpos);
	const rawQuery = qpos < 0 ? '' : rawUrl.slice(qpos + 1);

	if (/(^|&)X-Amz-(Signature|Algorithm)=/i.test(rawQuery))
		return [403, 'AccessDenied', 'presigned URLs are not supported by the dev front'];
	if (!authz)
		return [403, 'AccessDenied', 'Access Denied: the request is not signed'];
	const a = parseAuthorization(authz);
	if (!a)
		return [400, 'AuthorizationHeaderMalformed', 'the Authorization header is malformed'];
	if (a.accessKey !== opt.accessKey)
		return [403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'];
	if (a.service !== 's3' || a.region !== opt.region)
		return [400, 'AuthorizationHeaderMalformed', `credential scope must be */${opt.region}/s3/aws4_request`];
	const amzDate = req.headers['x-amz-date'];
	const when = parseAmzDate(amzDate);
	if (!when)
		return [403, 'AccessDenied', 'x-amz-date is missing or malformed'];
	if (amzDate.slice(0, 8) !== a.date)
		return [403, 'SignatureDoesNotMatch', 'credential scope date does not match x-amz-date'];
	if (Math.abs(Date.now() - when.getTime()) > opt.maxSkew * 1000)
		return [403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.'];
	const sha = req.headers['x-amz-content-sha256'];
	if (!sha)
		return [400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256'];
	if (!a.signedHeaders.includes('x-amz-content-sha256') || !a.signedHeaders.includes('host'))
		return [403, 'SignatureDoesNotMatch', 'SignedHeaders must include host and x-amz-content-sha256'];
	if (sha.startsWith('STREAMING-'))
		return [501, 'NotImplemented', 'aws-chunked streaming signatures are not supported by the dev front'];
	if (sha !== 'UNSIGNED-PAYLOAD' && !/^[0-9a-f]{64}$/.test(sha))
		return [400, 'InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a lowercase hex SHA-256'];

	const headers = {};
	for (const name of a.signedHeaders) {
		if (name !== name.toLowerCase() || name === '')
			return [403, 'SignatureDoesNotMatch', 'SignedHeaders must be lowercase names'];
		const v = req.headers[name];
		if (v === undefined)
			return [403, 'SignatureDoesNotMatch', `signed header ${name} is missing from the request`];
		headers[name] = Array.isArray(v) ? v.join(',') : v;
	}
	let query;
	try {
		query = parseQuery(rawQuery);
	} catch (e) {
		return [400, 'InvalidArgument', 'malformed percent-encoding in the query string'];
	}

	const signer = new SignatureV4({
		credentials: { accessKeyId: opt.accessKey, secretAccessKey: opt.secretKey },
		region: opt.region,
		service: 's3',
		sha256: Hash.bind(null, 'sha256'),
		uriEscapePath: false,
		applyChecksum: false,
	});
	const signed = await signer.sign({
		method: req.method,
		protocol: 'http:',
		hostname: '127.0.0.1',
		path,
		query,
		headers,
	}, {
		signingDate: when,
		signingRegion: opt.region,
		signingService: 's3',
		signableHeaders: new Set(a.signedHeaders),
	});
	const m = /Signature=([0-9a-f]{64})$/.exec(signed.headers.authorization || '');
	const mh = /SignedHeaders=([^,]*),/.exec(signed.headers.authorization || '');
	if (!m || !mh || mh[1] !== a.signedHeaders.join(';'))
		return [403, 'SignatureDoesNotMatch', 'SignedHeaders is not in canonical (sorted) form'];
	const want = Buffer.from(m[1], 'utf8');
	const got = Buffer.from(a.signature, 'utf8');
	if (want.length !== got.length || !crypto.timingSafeEqual(want, got))
		return [403, 'SignatureDoesNotMatch',
			'The request signature we calculated does not match the signature you provided. Check your key and signing method.'];
	return null;
}

/*
 * Spool the request body to a private temp file while hashing it, so that
 * s3rver (which writes straight over the object file as bytes arrive) never
 * sees a body whose hash does not match, or one the client abandoned half-way:
 * like S3, a failed PUT must leave the previous object intact. Memory stays
 * bounded for any size; the cost is one extra local disk write.
 */
function spoolBody(req, expected, cb) {
	const file = path.join(opt.spoolDir, `body.${process.pid}.${crypto.randomBytes(8).toString('hex')}`);
	const h = crypto.createHash('sha256');
	let size = 0;
	const hasher = new Transform({
		transform(chunk, enc, next) {
			h.update(chunk);
			size += chunk.length;
			next(null, chunk);
		},
	});
	const out = fs.createWriteStream(file, { flags: 'wx', mode: 0o600 });
	pipeline(req, hasher, out, (err) => {
		if (err) {
			fs.rm(file, { force: true }, () => cb(err));
			return;
		}
		const got = h.digest('hex');
		if (expected !== 'UNSIGNED-PAYLOAD' && got !== expected) {
			fs.rm(file, { force: true }, () => {
				const e = new Error('payload hash mismatch');
				e.s3code = 'XAmzContentSHA256Mismatch';
				cb(e);
			});
			return;
		}
		cb(null, file, size);
	});
}

function hasBody(req) {
	const cl = req.headers['content-length'];
	return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

function forward(req, res, file, size) {
	const headers = Object.assign({}, req.headers);
	delete headers.expect; /* we already answered 100-continue ourselves */
	delete headers['transfer-encoding'];
	headers.connection = 'keep-alive';
	if (file !== null)
		headers['content-length'] = String(size);
	const cleanup = () => {
		if (file !== null)
			fs.rm(file, { force: true }, () => {});
	};
	const up = http.request({
		host: '127.0.0.1',
		port: opt.upstream,
		method: req.method,
		path: req.url,
		headers,
		agent: upstreamAgent,
	});
	let failed = false;
	up.on('response', (ur) => {
		res.writeHead(ur.statusCode, ur.statusMessage, ur.rawHeaders.filter((_, i, arr) => {
			/* rawHeaders is [k, v, k, v...]: drop hop-by-hop connection headers. */
			const k = (i % 2 === 0 ? arr[i] : arr[i - 1]).toLowerCase();
			return k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding';
		}));
		pipeline(ur, res, () => {});
		log(req, ur.statusCode);
	});
	up.on('error', () => {
		if (failed)
			return;
		failed = true;
		cleanup();
		sendError(req, res, 503, 'ServiceUnavailable', 'upstream s3rver is unavailable');
	});
	up.on('close', cleanup);
	if (file === null) {
		up.end();
		return;
	}
	pipeline(fs.createReadStream(file), up, (err) => {
		if (err && !failed) {
			failed = true;
			cleanup();
			sendError(req, res, 503, 'ServiceUnavailable', 'upstream s3rver is unavailable');
		}
	});
}

function proxy(req, res) {
	const sha = req.headers['x-amz-content-sha256'];
	if (!hasBody(req)) {
		req.resume();
		if (sha !== 'UNSIGNED-PAYLOAD' && sha !== EMPTY_SHA256) {
			sendError(req, res, 400, 'XAmzContentSHA256Mismatch',
				'The provided x-amz-content-sha256 header does not match what was computed.');
			return;
		}
		forward(req, res, null, 0);
		return;
	}
	spoolBody(req, sha, (err, file, size) => {
		if (err) {
			if (err.s3code)
				sendError(req, res, 400, err.s3code,
					'The provided x-amz-content-sha256 header does not match what was computed.');
			else
				res.destroy(); /* the client went away mid-body: nothing is forwarded */
			return;
		}
		forward(req, res, file, size);
	});
}

async function handle(req, res, wantsContinue) {
	let verdict;
	try {
		verdict = await verify(req);
	} catch (e) {
		verdict = [403, 'SignatureDoesNotMatch', 'could not verify the signature'];
	}
	if (verdict) {
		sendError(req, res, verdict[0], verdict[1], verdict[2]);
		return;
	}
	if (wantsContinue)
		res.writeContinue();
	proxy(req, res);
}

/* The same front on each listener: plain HTTP always, HTTPS when asked. */
function serve(server) {
	server.on('checkContinue', (req, res) => handle(req, res, true));
	server.requestTimeout = 0; /* 64 MiB uploads over slow test clients must not be cut */
	server.headersTimeout = 60000;
	server.keepAliveTimeout = 30000;
	return server;
}

const servers = [];
const plain = serve(http.createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => handle(req, res, false)));
servers.push(plain);
plain.listen(opt.listen, opt.host, () => {
	process.stdout.write(`sigv4 front listening on http://${opt.host}:${opt.listen} -> 127.0.0.1:${opt.upstream} region=${opt.region}\n`);
});
if (opt.tlsListen) {
	const tls = serve(https.createServer({
		maxHeaderSize: 64 * 1024,
		cert: fs.readFileSync(opt.tlsCert),
		key: fs.readFileSync(opt.tlsKey),
		minVersion: 'TLSv1.2',
	}, (req, res) => handle(req, res, false)));
	/* A client that refuses the certificate just closes: not worth a log line each. */
	tls.on('tlsClientError', () => {});
	servers.push(tls);
	tls.listen(opt.tlsListen, opt.host, () => {
		process.stdout.write(`sigv4 front listening on https://${opt.host}:${opt.tlsListen} -> 127.0.0.1:${opt.upstream}\n`);
	});
}
for (const sig of ['SIGTERM', 'SIGINT'])
	process.on(sig, () => {
		for (const s of servers)
			s.close();
		process.exit(0);
	});
