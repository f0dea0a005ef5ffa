from django.urls import path

from chat import api, views

urlpatterns = [
    path("", views.room_list, name="room-list"),
    # Before rooms/<slug>/, which would otherwise take "propose" for a room.
    path("rooms/propose/", views.propose_room, name="propose-room"),
    path("rooms/<slug:slug>/", views.room_detail, name="room-detail"),
    path("rooms/<slug:slug>/act/", views.room_act, name="room-act"),  # its forms, posted without script
    path("rooms/<slug:slug>/messages/", views.older_messages, name="older-messages"),
    path("rooms/<slug:slug>/frame/", views.room_frame, name="room-frame"),
    path("messages/<int:pk>/menu/", views.message_menu, name="message-menu"),
    path("messages/<int:pk>/", views.message_detail, name="message-detail"),
    path("messages/<int:pk>/edit/", views.message_edit_form, name="message-edit"),
    path("accounts/signup/", views.signup, name="signup"),
    path("rooms/<slug:slug>/mentions/", views.mention_suggestions, name="mention-suggestions"),
    path("messages/<int:pk>/reply/", views.reply_bar, name="reply-bar"),
    path("people/<str:username>/", views.person, name="person"),
    path("dm/<str:username>/", views.direct_message, name="direct-message"),
    path("people/<str:username>/block/", views.block_person, {"blocking": True}, name="block"),
    path("people/<str:username>/unblock/", views.block_person, {"blocking": False}, name="unblock"),
    path("rooms/<slug:slug>/attachments/", views.upload_attachment, name="attachment-upload"),
    path("attachments/<int:pk>/", views.attachment, name="attachment"),
    path("attachments/<int:pk>/thumb/", views.attachment, {"thumbnail": True}, name="attachment-thumbnail"),
    path("rooms/<slug:slug>/messages/<int:pk>/", views.message_permalink, name="message-permalink"),
    path("rooms/<slug:slug>/messages/newer/", views.newer_messages, name="newer-messages"),
    path("messages/<int:pk>/link/", views.message_link, name="message-link"),
    path("search/", views.search, name="search"),
    path("settings/", views.mention_email_settings, name="settings"),
    path("settings/snooze/", views.snooze, name="snooze"),
    path("rooms/<slug:slug>/notifications/", views.room_level, name="room-level"),
    # The bots' API: a key in the Authorization header, JSON answers (chat/api.py).
    path("api/rooms/<slug:slug>/messages", api.room_messages, name="api-room-messages"),
    path("settings/confirm/<str:token>/", views.confirm_email, name="confirm-email"),
]
