from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET

from chat import fragments, services
from chat.models import Room


def _room_or_404(slug: str) -> Room:
    room = services.find_room(slug)
    if room is None:
        raise Http404("No such room.")
    return room


@require_GET
def room_list(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/room_list.html", {"rooms": services.rooms_with_online_counts()})


@require_GET
def room_detail(request: HttpRequest, slug: str) -> HttpResponse:
    room = _room_or_404(slug)
    context = (
        fragments.history_context(room)
        | fragments.members_context(room)
        | fragments.form_context(room, request.user)
    )
    return render(request, fragments.ROOM_TEMPLATE, context)


@require_GET
def older_messages(request: HttpRequest, slug: str) -> HttpResponse:
    """The page of history before ?before=<pk>, for the 'load older messages' link."""
    room = _room_or_404(slug)
    try:
        before = int(request.GET["before"])
    except (KeyError, ValueError):
        return HttpResponse("Say which message to page back from with ?before=<id>.", status=400)
    return HttpResponse(fragments.older_messages_html(room, before))


def signup(request: HttpRequest) -> HttpResponse:
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.save())
        next_url = request.GET.get("next", "")
        if url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
            return redirect(next_url)
        return redirect("room-list")
    return render(request, "registration/signup.html", {"form": form})
