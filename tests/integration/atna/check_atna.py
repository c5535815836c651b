#!/usr/bin/env python3
"""check_atna.py MESSAGES ENTRIES_JSON ORIGIN - judge what an ATNA repository received.

MESSAGES: rsyslog's file, one raw RFC 5424 SYSLOG-MSG per line (%rawmsg%).
ENTRIES_JSON: the ledger as [{"seq","type","actor","subject","payload"}...].
Checks (IHE ITI-20, RFC 5424, DICOM PS3.15 A.5):
  - each line parses as RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP PROCID MSGID SD SP BOM MSG,
    facility 10, severity 5 (success) or 4 (failure), APP-NAME ehrgate, MSGID IHE+RFC-3881,
    SD [ehrgate@PEN index="N" origin="ORIGIN"];
  - every ledger index arrived (duplicates allowed), and the indices run in order: each
    message is the next index, or a resend that starts again at or below one already sent;
  - MSG is well-formed XML (xml.etree), an AuditMessage whose fields match its entry.
Prints one line per problem and exits 1 if there was any."""
import json
import re
import sys
import xml.etree.ElementTree as ET

HDR = re.compile(r'^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (\[.*?(?<!\\)\]) (.*)$', re.S)
SD = re.compile(r'^\[ehrgate@(\d+) index="(\d+)" origin="((?:[^"\\\]]|\\["\\\]])*)"\]$')
BOM = '\ufeff'
problems = []


def bad(msg):
    problems.append(msg)


def check_xml(idx, text, entry):
    try:
        root = ET.fromstring(text.encode('utf-8'))
    except ET.ParseError as e:
        bad(f'index {idx}: MSG is not well-formed XML: {e}')
        return None
    if root.tag != 'AuditMessage':
        bad(f'index {idx}: root element {root.tag}')
        return None
    ev = root.find('EventIdentification')
    if ev is None:
        bad(f'index {idx}: no EventIdentification')
        return None
    outcome = ev.get('EventOutcomeIndicator')
    if outcome not in ('0', '4', '8', '12'):
        bad(f'index {idx}: EventOutcomeIndicator {outcome!r}')
    if ev.get('EventActionCode') not in ('C', 'R', 'U', 'D', 'E'):
        bad(f'index {idx}: EventActionCode {ev.get("EventActionCode")!r}')
    if not ev.get('EventDateTime'):
        bad(f'index {idx}: no EventDateTime')
    eid = ev.find('EventID')
    if eid is None or not eid.get('csd-code') or not eid.get('codeSystemName') or not eid.get('originalText'):
        bad(f'index {idx}: EventID incomplete')
    parts = root.findall('ActiveParticipant')
    if not parts:
        bad(f'index {idx}: no ActiveParticipant')
    if not any(p.get('UserID') == entry['actor'] for p in parts):
        bad(f'index {idx}: no ActiveParticipant with UserID = the entry actor')
    for p in parts:
        if p.get('UserIsRequestor') not in ('true', 'false'):
            bad(f'index {idx}: UserIsRequestor {p.get("UserIsRequestor")!r}')
    src = root.find('AuditSourceIdentification')
    if src is None or not src.get('AuditSourceID'):
        bad(f'index {idx}: no AuditSourceIdentification/@AuditSourceID')
    objs = root.findall('ParticipantObjectIdentification')
    if entry['subject'] and not any(o.get('ParticipantObjectID') == entry['subject'] for o in objs):
        bad(f'index {idx}: no ParticipantObjectIdentification for the entry subject')
    for o in objs:
        if not o.get('ParticipantObjectID') or o.find('ParticipantObjectIDTypeCode') is None:
            bad(f'index {idx}: ParticipantObjectIdentification incomplete')
    # the outcome rule: a refused operation is never success
    pl = entry.get('payload') or {}
    if pl.get('outcome') == 'failure' and outcome == '0':
        bad(f'index {idx}: failure entry rendered as success')
    if pl.get('outcome') == 'success' and outcome != '0':
        bad(f'index {idx}: success entry rendered as failure')
    return outcome


def main():
    msgs_path, entries_path, origin = sys.argv[1], sys.argv[2], sys.argv[3]
    entries = {e['seq']: e for e in json.load(open(entries_path))}
    seen = set()
    prev = None
    count = 0
    with open(msgs_path, 'rb') as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip(b'\n').decode('utf-8')
            if not line:
                continue
            count += 1
            m = HDR.match(line)
            if not m:
                bad(f'line {n}: not an RFC 5424 message')
                continue
            pri, ts, host, app, procid, msgid, sd, rest = m.groups()
            pri = int(pri)
            sdm = SD.match(sd)
            if not sdm:
                bad(f'line {n}: structured data {sd[:80]!r}')
                continue
            idx = int(sdm.group(2))
            if pri // 8 != 10:
                bad(f'index {idx}: facility {pri // 8}')
            if app != 'ehrgate' or msgid != 'IHE+RFC-3881':
                bad(f'index {idx}: APP-NAME {app!r} MSGID {msgid!r}')
            if not re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$', ts):
                bad(f'index {idx}: TIMESTAMP {ts!r}')
            if re.sub(r'\\(["\\\]])', r'\1', sdm.group(3)) != origin:
                bad(f'index {idx}: origin {sdm.group(3)!r}')
            if not rest.startswith(BOM):
                bad(f'index {idx}: MSG without the UTF-8 BOM')
                continue
            if prev is not None and not (idx == prev + 1 or idx <= prev):
                bad(f'line {n}: index {idx} after {prev}: a gap')
            if prev is None and idx != 0:
                bad(f'line {n}: first index {idx}, want 0')
            prev = idx
            if idx not in entries:
                bad(f'index {idx}: no such ledger entry')
                continue
            outcome = check_xml(idx, rest[1:], entries[idx])
            sev = pri % 8
            if outcome is not None and sev != (5 if outcome == '0' else 4):
                bad(f'index {idx}: severity {sev} for outcome {outcome}')
            seen.add(idx)
    missing = sorted(set(entries) - seen)
    if missing:
        bad(f'{len(missing)} ledger indices never arrived, first {missing[:10]}')
    for p in problems[:50]:
        print(p)
    print(f'check_atna: {count} messages, {len(seen)} distinct indices, {len(entries)} entries, '
          f'{count - len(seen)} duplicates, {len(problems)} problems')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
