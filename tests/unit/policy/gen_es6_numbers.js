// Regenerates es6_numbers.txt: random IEEE-754 doubles and the string
// ECMAScript's Number.prototype.toString gives them (RFC 8785 §3.2.2.3).
// Run: node gen_es6_numbers.js
const crypto = require("crypto");
let out = "# hex-ieee,expected: ECMAScript Number.prototype.toString (Node " + process.version + "), same format as\n# cyberphone/json-canonicalization es6testfile; regenerate with gen_es6_numbers.js\n";
const b = Buffer.alloc(8);
for (let i = 0; i < 2000;) {
	crypto.randomFillSync(b);
	const v = b.readDoubleBE(0);
	if (!isFinite(v)) continue;
	out += b.toString("hex") + "," + v.toString() + "\n";
	i++;
}
for (let i = 0; i < 500; i++) {
	const v = Math.round(Math.random() * 1e6) / Math.pow(10, Math.floor(Math.random() * 12));
	b.writeDoubleBE(v);
	out += b.toString("hex") + "," + v.toString() + "\n";
}
require("fs").writeFileSync("es6_numbers.txt", out);
