"""Parses an HLS media playlist with the `m3u8` package (independent of swarmcast) and prints
what it read as JSON: `python3 tests/hls/playlist.py FILE`. Exits 1 with the reason if the
package refuses the text."""

import json
import sys

import m3u8


def main(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        playlist = m3u8.loads(text)
    except Exception as e:  # the package's own errors, and anything else it raises
        print(f"m3u8 refused the playlist: {e}", file=sys.stderr)
        return 1
    out = {
        "version": playlist.version,
        "target_duration": playlist.target_duration,
        "media_sequence": playlist.media_sequence,
        "discontinuity_sequence": playlist.discontinuity_sequence,
        "is_endlist": playlist.is_endlist,
        "is_variant": playlist.is_variant,
        "segments": [
            {
                "uri": s.uri,
                "duration": s.duration,
                "discontinuity": s.discontinuity,
                "program_date_time": s.program_date_time.isoformat(timespec="milliseconds")
                if s.program_date_time
                else None,
            }
            for s in playlist.segments
        ],
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
