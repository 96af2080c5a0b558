"""dsl.plaintext: the text a reader of an email's HTML sees."""

from __future__ import annotations

import pytest

from dsl.plaintext import plain_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("<h1>Title</h1><p>body</p>", "Title\n\nbody"),
        ("<div>one</div><div>two</div>", "one\ntwo"),
        ("<p>a<br>b<br><br>c</p>", "a\nb\n\nc"),
        ("<p>  many \n  spaces\tand\nlines </p>", "many spaces and lines"),
        ("<p>a <b>bold</b> <i>word</i>, then<b>joined</b></p>", "a bold word, thenjoined"),
        ("<p>1 &lt; 2 &amp;&amp; x&nbsp;y &#8364;</p>", "1 < 2 && x y \u20ac"),
        (
            "<table><tr><td>Amount</td><td><b>10 USD</b></td></tr><tr><td>Deal</td><td>D</td></tr>"
            "</table>",
            "Amount 10 USD\nDeal D",
        ),
        (
            "<table><tr><td>LOGO</td></tr><tr><td><table><tr><td><p>body</p></td></tr></table>"
            "</td></tr><tr><td>footer</td></tr></table>",
            "LOGO\n\nbody\n\nfooter",
        ),
        ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
        ('<ol start="3"><li>c</li><li>d</li></ol>', "3. c\n4. d"),
        ("<ul><li>a<ul><li>inner</li></ul></li><li>b</li></ul>", "- a\n  - inner\n- b"),
        ("<ol><li><p>para</p></li></ol>", "1. para"),
        ("<pre>  keep\n    this</pre><p>x</p>", "keep\n    this\n\nx"),
        (
            '<p><a href="https://ownly.com/deals">See deals</a>.</p>',
            "See deals (https://ownly.com/deals).",
        ),
        ('<a href="https://ownly.com/">https://ownly.com/</a>', "https://ownly.com/"),
        ('<a href="https://ownly.com/x"><img src="x.png" alt="logo"></a>', "https://ownly.com/x"),
        ('<a href="mailto:help@ownly.com?subject=Hi">help@ownly.com</a>', "help@ownly.com"),
        ('<a href="mailto:help@ownly.com">write to us</a>', "write to us (help@ownly.com)"),
        ('<a href="#top">top</a> <a href="/relative">rel</a>', "top rel"),
        ('<a href="javascript:alert(1)">x</a>', "x"),
        ('<p>before<img src="x.png" alt="an image">after</p>', "beforeafter"),
        ("<head><title>T</title><style>p{color:red}</style></head><body>b</body>", "b"),
        ("<p>a</p><script>var x = '<p>no</p>';</script><p>b</p>", "a\n\nb"),
        ('<div style="display: none">preheader <div>nested</div></div><p>shown</p>', "shown"),
        ('<div style="color:red;DISPLAY:NONE">x</div>y', "y"),
        ("<p hidden>x</p><p>y</p>", "y"),
        (
            '<img style="display:none" src="p.gif"><p>after a hidden void element</p>',
            "after a hidden void element",
        ),
        ("<p>a</p><hr><p>b</p>", "a\n\nb"),
        ("<!-- a comment --><p>text</p>", "text"),
        ("", ""),
    ],
)
def test_plain_text(html: str, text: str) -> None:
    assert plain_text(html) == text
