-- Parley's answer to a request body over HAProxy's cap (deploy/haproxy.cfg loads this file).
--
-- Why a service and not `http-request return`: HAProxy before 3.0 does not drain a request body it
-- answered early. It closes the connection while the upload is still arriving, and a browser then
-- often sees a connection reset instead of the answer (Chromium: most of the time). This service
-- reads the body to its end, dropping it, and only then answers with the pages Parley rendered
-- itself (`manage.py proxy_pages $PARLEY_PAGES`, read once as HAProxy starts):
--   htmx (HX-Request: true, the composer's upload): 200 with the notice fragment and
--   HX-Reswap: none, because htmx swaps only 2xx answers: the notice line changes, the form keeps
--   its file and caption, as when Parley itself refuses a file;
--   anything else (a plain form post): 413 with the whole page.

local pages = os.getenv("PARLEY_PAGES")

local function read(name)
    local file = assert(io.open(pages .. "/" .. name, "rb"), "run manage.py proxy_pages " .. pages)
    local content = file:read("a")
    file:close()
    return content
end

local page, fragment = read("too-big.html"), read("too-big-fragment.html")

core.register_service("parley_too_big", "http", function(applet)
    repeat
        local chunk = applet:receive(65536)
    until chunk == nil or chunk == ""
    local hx_request = applet.headers["hx-request"]
    local htmx = hx_request ~= nil and hx_request[0] == "true"
    local body = htmx and fragment or page
    applet:set_status(htmx and 200 or 413)
    applet:add_header("content-type", "text/html; charset=utf-8")
    applet:add_header("cache-control", "no-store")
    if htmx then
        applet:add_header("hx-reswap", "none")
    end
    applet:add_header("content-length", tostring(#body))
    applet:start_response()
    applet:send(body)
end)
