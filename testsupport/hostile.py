"""Message text an attacker might post: raw HTML, htmx attributes, script URLs in every Markdown
syntax, and inputs built to be slow or confusing. The formatting unit tests and the browser test
both post it; every entry must come out inert."""

# Issue 16: 248 uses of one reference definition of a 994-character URL; 1,993 characters typed
# were stored as 265 KB of HTML (133 times the text), and five of them broke the room's history.
LONG_URL = "https://example.com/" + "a" * 974
REFERENCE_BLOWUP = "[x] " * 248 + "\n\n[x]: " + LONG_URL
# Issue 16: a host over 255 characters; the URL parser dropped it, leaving an empty link.
OVERLONG_HOST = "http://" + "a." * 996

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "<style>body{display:none}</style>",
    '<div hx-get="/admin/" hx-trigger="load">x</div>',
    '<button hx-post="/accounts/logout/" hx-trigger="load">x</button>',
    '<form ws-send><input name="action" value="remove"></form>',
    '<a href="https://ok.example" onclick="alert(1)" hx-get="/x" ws-send>x</a>',
    '<a href="javascript:alert(1)">x</a>',
    "<input autofocus onfocus=alert(1)>",
    "<details open ontoggle=alert(1)>",
    '<base href="https://evil.example/"><link rel=stylesheet href=x>',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<object data="x"></object><embed src="x"><!-- comment -->',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<scr<script>ipt>alert(1)</script>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](  javascript:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](&#x6A;avascript&#x3A;alert(1))",
    "[click](java&#09;script:alert(1))",
    "[click](<javascript:alert(1)>)",
    "[click](<java\tscript:alert(1)>)",
    "[click](ja\u0000vascript:alert(1))",
    "[click](\u200bjavascript:alert(1))",
    "[click](\uff4a\uff41\uff56\uff41script:alert(1))",  # fullwidth letters
    "<javascript:alert(1)>",
    "javascript:alert(1)",
    "[click][evil]\n\n[evil]: javascript:alert(1)",
    "[click]\n\n[click]: <data:text/html,<script>alert(1)</script>>",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](data:image/png;base64,iVBORw0KGgo=)",
    "[click](vbscript:msgbox(1))",
    "[click](file:///etc/passwd)",
    "![x](https://example.com/x.png)",
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    '[**bold**](javascript:alert(1) "title")',
    '[x](https://ok.example "t\\" onmouseover=\\"alert(1)")',
    '[x](https://ok.example/" onmouseover="alert(1))',
    'www.example.com/" onmouseover="alert(1)',
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
    "> <img src=x onerror=alert(1)>\n> [x](javascript:alert(1))",
    '- <iframe srcdoc="<script>alert(1)</script>">\n  - [x](vbscript:x)',
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "# <script>alert(1)</script>\nHeading\n===",
    "**" * 3000,
    "> " * 1000 + "<script>alert(1)</script>",
    "[" * 1000 + "](javascript:alert(1))",
    "https://example.com/" + "a" * 5000 + '"onmouseover="alert(1)',
    "*a **b _c ~~d `e [f](javascript:x) " * 200,
    REFERENCE_BLOWUP,
    "[a][x] [b][x] [c][x]\n\n[x]: " + LONG_URL + "\n\n" + "[x] " * 200,
    "1. - > " * 5 + "x\n" + "1. - > 1. - > 1. - > x\n" * 80,  # nesting multiplies the markup
    OVERLONG_HOST,
    "https://www." + "a." * 900,
    "[t](http://" + "a." * 900 + ")",
    "<http://" + "a." * 900 + ">",
]
