"""The Bastion token service: an OAuth 2.0 authorization server per RFC 9700.

Entry points: :func:`bastion.identity.app.create_identity_app`,
:func:`bastion.identity.settings.load_identity_settings`, the ``identity`` click group in
:mod:`bastion.identity.cli` and :func:`bastion.identity.demo.prepare_demo_identity`.
Modules are named after what they provide or the RFC they implement (``rfc7009``,
``rfc7636``, ``rfc7662``, ``rfc8414``, ``rfc9068``). See docs/identity.md.
"""
